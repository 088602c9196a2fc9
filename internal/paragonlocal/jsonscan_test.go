package paragonlocal

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

var validSeeds = []string{
	``, ` `, `{}`, `[]`, `""`, `0`, `-0`, `01`, `-`, `1.`, `.5`, `1e`, `1e+`, `1E-7`, `-12.5e+3`, `+1`,
	`true`, `truex`, `tru`, `null`, `nul`, `false`, `{"a":1,}`, `[1,]`, `[,1]`, `{"a" 1}`, `{a:1}`,
	`{"a":1}{}`, ` {"a" : [1, 2, {"b": null}], "c": "d"} `, `"\u00e9\n\t\"\\\/\b\f\r"`, `"\u00g0"`,
	`"\x"`, "\"a\u0001b\"", "\"tab\there\"", `"unterminated`, `"\`, `"\u12"`, `[[[[]]]]`, `{"a":{"b":{}}}`,
	"\"\xff\xfe\"", `9007199254740993`, `{"name":"Lead Created","payload":{"eventId":"e-1"}}`,
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001), strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	"\u00a0{}", "{}\u2028", `{"a":1 "b":2}`, `[1 2]`, `{"a"}`, `{"a":}`, `{,}`, `-01`, `00`, `1.5.5`,
}

func TestValidJSONMatchesStdlib(t *testing.T) {
	for _, s := range validSeeds {
		if got, want := validJSON([]byte(s)), json.Valid([]byte(s)); got != want {
			t.Errorf("validJSON(%.40q) = %v, json.Valid = %v", s, got, want)
		}
	}
}

// FuzzValidJSON checks validJSON against json.Valid, and members/skipValue
// against encoding/json on valid objects. Run: go test -fuzz FuzzValidJSON.
func FuzzValidJSON(f *testing.F) {
	for _, s := range validSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		valid := validJSON(b)
		if valid != json.Valid(b) {
			t.Fatalf("validJSON(%q) = %v, json.Valid disagrees", b, valid)
		}
		if !valid || b[skipSpace(b, 0)] != '{' {
			return
		}
		var m map[string]json.RawMessage
		if !utf8.Valid(b) || json.Unmarshal(b, &m) != nil {
			return // encoding/json rewrites invalid UTF-8, so keys would differ
		}
		for k, want := range m {
			got, _ := members(b, k, "")
			if string(got) != string(want) {
				t.Fatalf("members(%q, %q) = %q, want %q", b, k, got, want)
			}
		}
	})
}

// BenchmarkParseBody measures body validation and member extraction on the
// Lead Created example, against encoding/json's validator and decoder.
func BenchmarkParseBody(b *testing.B) {
	body := []byte(`{"name":"Lead Created","payload":` + examplePayload + `}`)
	b.Run("validJSON+members", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if !validJSON(body) {
				b.Fatal("invalid")
			}
			name, payload := members(body, "name", "payload")
			id, _ := members(payload, "eventId", "")
			if name == nil || id == nil {
				b.Fatal("members not found")
			}
		}
	})
	b.Run("json.Valid", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			json.Valid(body)
		}
	})
	b.Run("json.Unmarshal", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			var env struct {
				Name    string          `json:"name"`
				Payload json.RawMessage `json:"payload"`
			}
			var p struct {
				EventID string `json:"eventId"`
			}
			if json.Unmarshal(body, &env) != nil || json.Unmarshal(env.Payload, &p) != nil {
				b.Fatal("decode")
			}
		}
	})
}
