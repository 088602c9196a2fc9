// Package sql holds the relay's SQL, one statement per file, embedded in the
// binary. Every statement the relay runs against the outbox lives here so it
// can be read, explained and reviewed as SQL; internal/outbox executes them.
//
// The files under operator/ are ready-made queries for people on call; they
// are tested against a real database but never run by the relay.
package sql

import (
	"embed"
	"fmt"
)

//go:embed *.sql operator/*.sql
var files embed.FS

// Query returns the text of the embedded statement name (file name without
// ".sql"). It panics when the file does not exist: statements are fixed at
// build time, so a missing one is a programming error caught by any test.
func Query(name string) string {
	b, err := files.ReadFile(name + ".sql")
	if err != nil {
		panic(fmt.Sprintf("sql: no embedded statement %q: %v", name, err))
	}
	return string(b)
}

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
