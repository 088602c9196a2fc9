// Command configdoc rewrites the generated blocks of README.md from the
// settings declarations (make config-docs). Run it from the repository
// root; -check only reports whether README.md is current (exit 1 if not).
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"

	"github.com/paragon-outbox/outbox-relay/internal/config"
)

// blocks are the generated README blocks: name → content. A package that
// declares its own settings adds its table here, e.g.
// "console": config.MarkdownTable(config.SettingsOf(console.Settings{})).
func blocks() map[string]string {
	return map[string]string{
		"settings": config.READMESettings(),
	}
}

// readme is rewritten in place; run from the repository root.
const readme = "README.md"

func main() {
	check := flag.Bool("check", false, "only check that the file is current")
	flag.Parse()
	old, err := os.ReadFile(readme)
	if err != nil {
		fmt.Fprintln(os.Stderr, "configdoc:", err)
		os.Exit(1)
	}
	doc := string(old)
	for name, content := range blocks() {
		if doc, err = config.ReplaceBlock(doc, name, content); err != nil {
			fmt.Fprintf(os.Stderr, "configdoc: %s: %v\n", readme, err)
			os.Exit(1)
		}
	}
	if bytes.Equal(old, []byte(doc)) {
		return
	}
	if *check {
		fmt.Fprintf(os.Stderr, "configdoc: %s is out of date: run make config-docs\n", readme)
		os.Exit(1)
	}
	st, err := os.Stat(readme)
	if err != nil {
		fmt.Fprintln(os.Stderr, "configdoc:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(readme, []byte(doc), st.Mode().Perm()); err != nil { //nolint:gosec // G703: a constant path, the README rewritten in place
		fmt.Fprintln(os.Stderr, "configdoc:", err)
		os.Exit(1)
	}
}
