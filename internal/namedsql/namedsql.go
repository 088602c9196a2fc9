// Package namedsql reads SQL files written in sqlc's annotated style
// ("-- name: GetThing :one" before each statement), so that a package's
// queries live in a .sql file, not in Go strings, until they are generated
// by sqlc (issue 8; see NOTES.md). Statements are returned verbatim,
// comments included.
package namedsql

import (
	"fmt"
	"io/fs"
	"regexp"
	"strings"
)

var nameLine = regexp.MustCompile(`^--\s*name:\s*([A-Za-z][A-Za-z0-9_]*)\s+:(one|many|exec|execrows)\s*$`)

// Queries maps a query name to its SQL text.
type Queries map[string]string

// MustLoad parses file in fsys and panics on a malformed file: the files are
// embedded in the binary, so a bad one is a programming error caught by any
// test of the package.
func MustLoad(fsys fs.FS, file string) Queries {
	q, err := Load(fsys, file)
	if err != nil {
		panic(err)
	}
	return q
}

// Load parses file in fsys. Errors: the file is unreadable, a statement has
// no name, a name repeats, or the file holds no statement.
func Load(fsys fs.FS, file string) (Queries, error) {
	b, err := fs.ReadFile(fsys, file)
	if err != nil {
		return nil, err
	}
	q := Queries{}
	var name string
	var body []string
	flush := func() error {
		text := strings.TrimSpace(strings.Join(body, "\n"))
		if name == "" {
			if stripComments(text) != "" {
				return fmt.Errorf("%s: SQL before the first -- name: line", file)
			}
			return nil
		}
		if _, dup := q[name]; dup {
			return fmt.Errorf("%s: query %s named twice", file, name)
		}
		if stripComments(text) == "" {
			return fmt.Errorf("%s: query %s is empty", file, name)
		}
		q[name] = strings.TrimSuffix(text, ";")
		return nil
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if m := nameLine.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			if err := flush(); err != nil {
				return nil, err
			}
			name, body = m[1], nil
			continue
		}
		body = append(body, line)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if len(q) == 0 {
		return nil, fmt.Errorf("%s: no -- name: query", file)
	}
	return q, nil
}

// Get returns the query named name, panicking if there is none (a
// programming error that every test of the caller catches).
func (q Queries) Get(name string) string {
	s, ok := q[name]
	if !ok {
		panic("namedsql: no query " + name)
	}
	return s
}

func stripComments(s string) string {
	var out []string
	for line := range strings.SplitSeq(s, "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "--") {
			out = append(out, t)
		}
	}
	return strings.Join(out, "\n")
}
