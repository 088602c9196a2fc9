package bench

import (
	"bytes"
	"encoding/csv"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/leads"
)

func testLeads(t testing.TB) *Leads {
	t.Helper()
	data, err := os.ReadFile("../../testdata/leads.csv")
	if err != nil {
		t.Fatal(err)
	}
	l, err := ParseLeads(data)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestParseLeads(t *testing.T) {
	l := testLeads(t)
	if l.Len() != 10_000 {
		t.Fatalf("leads.csv has %d rows, want 10000", l.Len())
	}
	a := l.Args(0, "ext-1")
	cols := strings.Split(leads.Columns, ", ")
	if len(a) != len(cols) || a[0] != "ext-1" {
		t.Fatalf("Args(0) = %v", a)
	}
	if _, ok := a[len(a)-1].(time.Time); !ok {
		t.Fatalf("created_at is %T, want time.Time", a[len(a)-1])
	}
	if _, err := ParseLeads([]byte("a,b\n1,2\n")); err == nil {
		t.Fatal("wrong header: want an error")
	}
}

func TestLeadsCSV(t *testing.T) {
	l := testLeads(t)
	data := l.CSV(10_005, func(i int) string {
		if i%2 == 0 {
			return "even"
		}
		return "odd"
	})
	recs, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 10_006 || strings.Join(recs[0], ", ") != leads.Columns {
		t.Fatalf("%d records, header %v", len(recs), recs[0])
	}
	if recs[1][1] != "even" || recs[2][1] != "odd" || recs[10_002][1] != "odd" {
		t.Fatal("owner_id not replaced")
	}
	// Row 10,001 cycles back to the first row.
	if recs[10_001][0] != recs[1][0] {
		t.Fatal("rows do not cycle")
	}
}

func TestInsertSQL(t *testing.T) {
	q := InsertSQL("leads_no_outbox")
	if !strings.HasPrefix(q, `INSERT INTO "leads_no_outbox" (external_id,`) || !strings.HasSuffix(q, "$15) RETURNING id") {
		t.Fatal(q)
	}
}

func TestProfilePath(t *testing.T) {
	cases := []struct {
		base, name string
		n          int
		want       string
	}{
		{"", "drain", 3, ""},
		{"cpu.pprof", "drain", 1, "cpu.pprof"},
		{"cpu.pprof", "drain", 2, "cpu.drain.pprof"},
		{"out/cpu", "scale", 2, "out/cpu.scale"},
		{"out.d/cpu", "scale", 2, "out.d/cpu.scale"},
	}
	for _, tc := range cases {
		if got := profilePath(tc.base, tc.name, tc.n); got != tc.want {
			t.Errorf("profilePath(%q, %q, %d) = %q, want %q", tc.base, tc.name, tc.n, got, tc.want)
		}
	}
}

func TestParseScenarios(t *testing.T) {
	all, err := ParseScenarios("all")
	if err != nil || !slices.Equal(all, Names()) || !slices.Contains(all, "river") || !slices.Contains(all, "drain") {
		t.Fatalf("all = %v, %v; want every scenario (Names()), river and drain among them", all, err)
	}
	got, err := ParseScenarios("latency, drain,latency")
	if err != nil || strings.Join(got, ",") != "latency,drain" {
		t.Fatalf("got %v, %v", got, err)
	}
	if _, err := ParseScenarios("drain,nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("unknown scenario: %v", err)
	}
}
