package bench

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ds := make([]time.Duration, 100)
	for i := range ds {
		ds[i] = time.Duration(i+1) * time.Millisecond // 1..100 ms
	}
	cases := []struct {
		p    float64
		want time.Duration
	}{
		{0, 1 * time.Millisecond}, {1, 1 * time.Millisecond}, {50, 50 * time.Millisecond},
		{95, 95 * time.Millisecond}, {99, 99 * time.Millisecond}, {99.5, 100 * time.Millisecond}, {100, 100 * time.Millisecond},
	}
	for _, tc := range cases {
		if got := Percentile(ds, tc.p); got != tc.want {
			t.Errorf("Percentile(1..100ms, %v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := Percentile(nil, 50); got != 0 {
		t.Errorf("Percentile(empty) = %v", got)
	}
	if got := Percentile([]time.Duration{7}, 99); got != 7 {
		t.Errorf("Percentile(one) = %v", got)
	}
}

func TestSummarize(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3, -1}
	in := slices.Clone(ds)
	s := Summarize(ds)
	if !slices.Equal(ds, in) {
		t.Fatalf("Summarize reordered its input: %v", ds)
	}
	want := Summary{N: 6, Min: -1, P50: 2, P95: 5, P99: 5, Max: 5, Mean: 2}
	if s != want {
		t.Fatalf("Summarize = %+v, want %+v", s, want)
	}
	if (Summarize(nil) != Summary{}) {
		t.Fatal("Summarize(nil) is not zero")
	}
}

func TestMaxInWindow(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms ...int) []time.Time {
		var ts []time.Time
		for _, m := range ms {
			ts = append(ts, t0.Add(time.Duration(m)*time.Millisecond))
		}
		return ts
	}
	cases := []struct {
		name  string
		times []time.Time
		want  int
	}{
		{"empty", nil, 0},
		{"one", at(0), 1},
		{"window is half-open", at(0, 1000), 1},
		{"just inside", at(0, 999), 2},
		{"busiest window not aligned to a second", at(0, 900, 950, 1100, 1800, 2500), 4},
		{"same instant", at(5, 5, 5), 3},
	}
	for _, tc := range cases {
		if got := MaxInWindow(tc.times, time.Second); got != tc.want {
			t.Errorf("%s: MaxInWindow = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestMeanRateAndPerSecond(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var ts []time.Time
	for i := range 201 { // 200 intervals of 10 ms: 100/s over 2 s
		ts = append(ts, t0.Add(time.Duration(i)*10*time.Millisecond))
	}
	if got := MeanRate(ts); got < 99.99 || got > 100.01 {
		t.Fatalf("MeanRate = %v, want 100", got)
	}
	if got := PerSecond(ts); !slices.Equal(got, []int{100, 100, 1}) {
		t.Fatalf("PerSecond = %v", got)
	}
	if MeanRate(ts[:1]) != 0 || MeanRate([]time.Time{t0, t0}) != 0 || PerSecond(nil) != nil {
		t.Fatal("degenerate samples")
	}
	if Rate(10, 2*time.Second) != 5 || Rate(10, 0) != 0 {
		t.Fatal("Rate")
	}
}

func TestCountLabel(t *testing.T) {
	for n, want := range map[int]string{10_000: "10k", 1_000_000: "1M", 100_000: "100k", 1500: "1500", 2_500_000: "2500k"} {
		if got := countLabel(n); got != want {
			t.Errorf("countLabel(%d) = %q, want %q", n, got, want)
		}
	}
}

func latencySample(n int) []time.Duration {
	r := rand.New(rand.NewPCG(1, 2))
	ds := make([]time.Duration, n)
	for i := range ds {
		ds[i] = time.Duration(r.ExpFloat64() * float64(3*time.Millisecond))
	}
	return ds
}

// BenchmarkSummarize: the latency scenario summarises ~10,000 samples.
func BenchmarkSummarize(b *testing.B) {
	ds := latencySample(10_000)
	b.ReportAllocs()
	for b.Loop() {
		_ = Summarize(ds)
	}
}

func BenchmarkPercentileSorted(b *testing.B) {
	ds := latencySample(10_000)
	slices.Sort(ds)
	for b.Loop() {
		_ = Percentile(ds, 99)
	}
}

// BenchmarkMaxInWindow: the ratelimit scenario scans 20,000 receipt times.
func BenchmarkMaxInWindow(b *testing.B) {
	t0 := time.Now()
	ts := make([]time.Time, 20_000)
	for i := range ts {
		ts[i] = t0.Add(time.Duration(i) * 500 * time.Microsecond)
	}
	for b.Loop() {
		_ = MaxInWindow(ts, time.Second)
	}
}

func TestStatementLabel(t *testing.T) {
	cases := map[string]string{
		"-- claim: take up to $2 due pending rows\nWITH due AS (...)":  "claim",
		"  -- record_results: write the outcome\nWITH r AS (SELECT 1)": "record_results",
		"SELECT   count(*)\n FROM outbox":                              "SELECT count(*) FROM outbox",
		"-- just a comment without a name here\nSELECT 1":              "-- just a comment without a name here SE…",
	}
	for q, want := range cases {
		if got := StatementLabel(q); got != want {
			t.Errorf("StatementLabel(%q) = %q, want %q", q, got, want)
		}
	}
}
