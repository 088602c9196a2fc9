package config_test

import (
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/config"
)

// TestREADMEConfigurationTableMatchesConfig: every variable Config reads is
// in the README's configuration table, with the default the code uses, and
// the table names no variable the code does not read.
func TestREADMEConfigurationTableMatchesConfig(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([A-Z_]+)` \\|([^|]*)\\|")
	documented := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		documented[m[1]] = strings.TrimSpace(m[2])
	}
	def := reflect.ValueOf(config.Defaults())
	typ := def.Type()
	read := map[string]bool{}
	for i := range typ.NumField() {
		name := typ.Field(i).Tag.Get("env")
		if name == "" {
			continue
		}
		read[name] = true
		doc, ok := documented[name]
		if !ok {
			t.Errorf("README configuration table lacks %s", name)
			continue
		}
		field := def.Field(i)
		if !strings.HasPrefix(doc, "`") {
			if !field.IsZero() {
				t.Errorf("%s: README gives no default (%q) but the code defaults to %v", name, doc, field.Interface())
			}
			continue
		}
		lit := strings.Trim(doc, "`")
		switch v := field.Interface().(type) {
		case time.Duration:
			d, err := time.ParseDuration(lit)
			if err != nil {
				t.Errorf("%s: README default %q is not a duration", name, lit)
				continue
			}
			if d != v {
				t.Errorf("%s: README default %s, code %s", name, d, v)
			}
		case int:
			n, err := strconv.Atoi(lit)
			if err != nil || n != v {
				t.Errorf("%s: README default %q, code %d", name, lit, v)
			}
		case float64:
			f, err := strconv.ParseFloat(lit, 64)
			if err != nil || f != v {
				t.Errorf("%s: README default %q, code %g", name, lit, v)
			}
		case string:
			if lit != v {
				t.Errorf("%s: README default %q, code %q", name, lit, v)
			}
		default:
			t.Errorf("%s: unhandled type %T", name, v)
		}
	}
	for name := range documented {
		if (strings.HasPrefix(name, "RELAY_") || strings.HasPrefix(name, "PARAGON_") || strings.HasPrefix(name, "LOG_")) && !read[name] {
			t.Errorf("README documents %s, which the code does not read", name)
		}
	}
}
