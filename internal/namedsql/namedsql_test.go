package namedsql

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoad(t *testing.T) {
	fsys := fstest.MapFS{
		"ok.sql":    {Data: []byte("-- header comment\n\n-- name: A :one\n-- why\nSELECT 1;\n\n-- name: B :exec\nUPDATE x SET y = 1\n")},
		"dup.sql":   {Data: []byte("-- name: A :one\nSELECT 1;\n-- name: A :one\nSELECT 2;\n")},
		"loose.sql": {Data: []byte("SELECT 1;\n-- name: A :one\nSELECT 2;\n")},
		"empty.sql": {Data: []byte("-- name: A :one\n-- nothing\n")},
	}
	q, err := Load(fsys, "ok.sql")
	if err != nil {
		t.Fatal(err)
	}
	if q.Get("A") != "-- why\nSELECT 1" || q.Get("B") != "UPDATE x SET y = 1" {
		t.Fatalf("parsed %q", q)
	}
	for file, want := range map[string]string{"dup.sql": "named twice", "loose.sql": "before the first", "empty.sql": "is empty", "missing.sql": "file does not exist"} {
		if _, err := Load(fsys, file); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", file, err, want)
		}
	}
}
