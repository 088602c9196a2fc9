package config

import (
	"fmt"
	"sort"
	"strings"
)

// The README's generated blocks sit between these markers (make
// config-docs rewrites them; a test checks they are current):
//
//	<!-- BEGIN GENERATED name: make config-docs -->
//	...
//	<!-- END GENERATED name -->
func blockMarkers(name string) (begin, end string) {
	return "<!-- BEGIN GENERATED " + name + ": make config-docs -->\n", "<!-- END GENERATED " + name + " -->"
}

// ReplaceBlock returns doc with the generated block name replaced by
// content; an error if the markers are missing.
func ReplaceBlock(doc, name, content string) (string, error) {
	begin, end := blockMarkers(name)
	i := strings.Index(doc, begin)
	if i < 0 {
		return "", fmt.Errorf("no %q marker", strings.TrimSpace(begin))
	}
	j := strings.Index(doc[i:], end)
	if j < 0 {
		return "", fmt.Errorf("no %q marker", end)
	}
	return doc[:i+len(begin)] + content + doc[i+j:], nil
}

// Block returns the content of the generated block name in doc.
func Block(doc, name string) (string, error) {
	begin, end := blockMarkers(name)
	i := strings.Index(doc, begin)
	if i < 0 {
		return "", fmt.Errorf("no %q marker", strings.TrimSpace(begin))
	}
	j := strings.Index(doc[i+len(begin):], end)
	if j < 0 {
		return "", fmt.Errorf("no %q marker", end)
	}
	return doc[i+len(begin) : i+len(begin)+j], nil
}

// READMESettings is the generated README block "settings": the table of
// Config's settings and which commands take which.
func READMESettings() string {
	var b strings.Builder
	b.WriteString(MarkdownTable(configSettings()))
	b.WriteString("\nEach command takes only the flags of the settings it uses (`outbox-relay <command> -h`), by group: " +
		"database (`DATABASE_URL`), paragon (`PARAGON_*`, `RELAY_TOKEN_TTL`), log (`LOG_*`), " +
		"retention (`RELAY_RETAIN_DELIVERED`, `RELAY_RETAIN_DEAD`), relay (the other `RELAY_*`). " +
		"A flag of another group still works there, with a warning, for scripts written before.\n\n")
	byGroups := map[string][]string{}
	for n, g := range commandGroups {
		k := strings.Join(g, ", ")
		byGroups[k] = append(byGroups[k], "`"+n+"`")
	}
	keys := make([]string, 0, len(byGroups))
	for k := range byGroups {
		sort.Strings(byGroups[k])
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return byGroups[keys[i]][0] < byGroups[keys[j]][0] })
	for _, k := range keys {
		fmt.Fprintf(&b, "- %s: %s\n", strings.Join(byGroups[k], ", "), k)
	}
	return b.String()
}
