package main

import (
	"bytes"
	"context"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/bench"
	"github.com/paragon-outbox/outbox-relay/internal/testdb"
)

// The bench's memory scenario runs its own executable as `outbox-relay
// relay`. Under `go test` that executable is this test binary, so with
// bench.ChildEnv set it runs the command in os.Args instead of the tests.
func init() {
	if os.Getenv(bench.ChildEnv) != "1" {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// TestBenchQuick is a smoke test of the bench harness: quick sizes of three
// scenarios against the test server, each in its own scratch database. It
// checks the table's shape and that every figure parses, never a timing.
func TestBenchQuick(t *testing.T) {
	db := testdb.New(t)
	clearEnv(t)
	t.Setenv("DATABASE_URL", db.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	code := run(ctx, []string{"bench", "-quick", "-scenario", "drain,latency,fairness", "-leads", "../../testdata/leads.csv"}, &out, &errb)
	if code != 0 {
		t.Fatalf("bench exited %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	t.Logf("\n%s", out.String())
	text := out.String()
	for _, want := range []string{"go1.", "postgres: "} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if !regexp.MustCompile(`machine:\s+\d+ CPUs`).MatchString(text) {
		t.Error("report lacks the CPU count")
	}

	got := map[string][]string{} // "scenario/metric" -> row
	sep := regexp.MustCompile(`\s{2,}`)
	header, inTable := strings.Join(bench.TableHeader, " "), false
	for _, line := range strings.Split(text, "\n") {
		if strings.Join(strings.Fields(line), " ") == header {
			inTable = true
			continue
		}
		if !inTable {
			continue
		}
		if strings.TrimSpace(line) == "" {
			break
		}
		f := sep.Split(strings.TrimSpace(line), -1)
		if len(f) != len(bench.TableHeader) {
			t.Fatalf("row %q has %d columns, want %d", line, len(f), len(bench.TableHeader))
		}
		if _, err := strconv.ParseFloat(f[2], 64); err != nil {
			t.Errorf("row %q: value does not parse: %v", line, err)
		}
		if f[3] == "" || f[3] == "-" {
			t.Errorf("row %q has no unit", line)
		}
		switch f[5] {
		case "ok", "MISS":
			if !regexp.MustCompile(`^(>=|<=) [0-9.]+$`).MatchString(f[4]) {
				t.Errorf("row %q: target %q", line, f[4])
			}
		case "-":
			if f[4] != "-" {
				t.Errorf("row %q: target without a result", line)
			}
		default:
			t.Errorf("row %q: result %q", line, f[5])
		}
		got[f[0]+"/"+f[1]] = f
	}
	want := []string{
		"drain/throughput", "drain/drain time", "drain/backlog", "drain/duplicates",
		"latency/p50", "latency/p95", "latency/p99", "latency/max", "latency/write rate", "latency/events",
		"fairness/small users done", "fairness/first small event", "fairness/all drained", "fairness/throughput",
	}
	for _, k := range want {
		if _, ok := got[k]; !ok {
			t.Errorf("table has no row %s", k)
		}
	}
	if len(got) != len(want) {
		t.Errorf("table has %d rows, want %d:\n%s", len(got), len(want), text)
	}
	if r := got["drain/backlog"]; r != nil && r[2] != "5000" {
		t.Errorf("quick drain backlog = %s, want 5000", r[2])
	}
	// Scratch databases are dropped afterwards.
	var left int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_database WHERE datname LIKE 'outbox_relay_bench%' AND datname LIKE '%\_' || $1 || '\_%'`, strconv.Itoa(os.Getpid())).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("%d scratch databases left behind", left)
	}
}
