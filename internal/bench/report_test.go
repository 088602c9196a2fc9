package bench

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestWriteTextTable(t *testing.T) {
	yes, no := true, false
	rep := &Report{
		Machine: Machine{CPUs: 2, GoVersion: "go1.26", Postgres: "15.2"},
		Results: []Result{
			{Scenario: "drain", Metric: "throughput", Value: 15234.7, Unit: "events/s", Target: AtLeast(15000), Pass: &yes},
			{Scenario: "latency", Metric: "p50", Value: 7.25, Unit: "ms", Target: AtMost(5), Pass: &no},
			{Scenario: "latency", Metric: "events", Value: 10000, Unit: "events"},
		},
		Notes: []Note{{Scenario: "scale", Text: "plan:\nIndex Scan"}},
	}
	var buf bytes.Buffer
	if err := rep.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	lines := strings.Split(out, "\n")
	var rows [][]string
	sep := regexp.MustCompile(`\s{2,}`)
	inTable := false
	for _, l := range lines {
		if strings.HasPrefix(l, "SCENARIO") {
			inTable = true
			continue
		}
		if inTable {
			if strings.TrimSpace(l) == "" {
				break
			}
			rows = append(rows, sep.Split(strings.TrimSpace(l), -1))
		}
	}
	if len(rows) != 3 {
		t.Fatalf("want 3 rows:\n%s", out)
	}
	want := [][]string{
		{"drain", "throughput", "15235", "events/s", ">= 15000", "ok"},
		{"latency", "p50", "7.25", "ms", "<= 5", "MISS"},
		{"latency", "events", "10000", "events", "-", "-"},
	}
	for i := range want {
		if strings.Join(rows[i], "|") != strings.Join(want[i], "|") {
			t.Errorf("row %d = %q, want %q", i, rows[i], want[i])
		}
		if _, err := strconv.ParseFloat(rows[i][2], 64); err != nil {
			t.Errorf("row %d value: %v", i, err)
		}
	}
	if !strings.Contains(out, "  scale: plan:\n    Index Scan") {
		t.Errorf("notes not indented:\n%s", out)
	}

	buf.Reset()
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Results) != 3 || *back.Results[1].Pass || back.Results[0].Target.Op != ">=" {
		t.Fatalf("JSON round trip: %+v", back.Results)
	}
}

func TestFormatValue(t *testing.T) {
	for v, want := range map[float64]string{15234.7: "15235", 42.25: "42.2", 3.14159: "3.14", 0: "0", 7: "7", -12.5: "-12.5", 0.5: "0.50"} {
		if got := FormatValue(v); got != want {
			t.Errorf("FormatValue(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestTargetMet(t *testing.T) {
	if !AtLeast(90).Met(90) || AtLeast(90).Met(89.9) || !AtMost(5).Met(5) || AtMost(5).Met(5.01) {
		t.Fatal("Target.Met")
	}
}

func TestTailBuffer(t *testing.T) {
	b := &tailBuffer{max: 5}
	b.Write([]byte("abc"))
	b.Write([]byte("defg"))
	if b.String() != "cdefg" {
		t.Fatal(b.String())
	}
}
