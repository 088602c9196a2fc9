// Package sqlfiles is the Go side of the sql/ directory, the one home of the
// project's SQL:
//
//   - queries/: every statement the product runs, one per file, compiled by
//     sqlc into package internal/dbsqlc (`make generate`; see README.md here).
//   - schema/: tables sqlc must know that are not ours (goose's).
//   - operator/: ready-made psql scripts for people on call, embedded here
//     (Operator, OperatorNames); tested against a real database, never run
//     by the relay.
//   - roles.sql: the least-privilege roles script a DBA runs (Roles).
//
// unchecked.go holds the few statements sqlc cannot express, in one place.
// The package is named sqlfiles, not sql, so it never shadows database/sql.
package sqlfiles

import (
	"embed"
	"fmt"
)

//go:embed operator/*.sql roles.sql
var files embed.FS

// Operator returns the text of operator/<name>.sql, or an error naming the
// file when there is none.
func Operator(name string) (string, error) {
	b, err := files.ReadFile("operator/" + name + ".sql")
	if err != nil {
		return "", fmt.Errorf("no operator query %q", name)
	}
	return string(b), nil
}

// OperatorNames lists the operator queries by name, sorted.
func OperatorNames() []string {
	entries, _ := files.ReadDir("operator")
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		n := e.Name()
		names = append(names, n[:len(n)-len(".sql")])
	}
	return names
}
