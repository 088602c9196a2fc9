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

func main() {
	path := flag.String("readme", "README.md", "file to rewrite")
	check := flag.Bool("check", false, "only check that the file is current")
	flag.Parse()
	old, err := os.ReadFile(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "configdoc:", err)
		os.Exit(1)
	}
	doc := string(old)
	for name, content := range blocks() {
		if doc, err = config.ReplaceBlock(doc, name, content); err != nil {
			fmt.Fprintf(os.Stderr, "configdoc: %s: %v\n", *path, err)
			os.Exit(1)
		}
	}
	if bytes.Equal(old, []byte(doc)) {
		return
	}
	if *check {
		fmt.Fprintf(os.Stderr, "configdoc: %s is out of date: run make config-docs\n", *path)
		os.Exit(1)
	}
	if err := os.WriteFile(*path, []byte(doc), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "configdoc:", err)
		os.Exit(1)
	}
}
