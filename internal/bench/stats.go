package bench

import (
	"math"
	"slices"
	"time"
)

// Summary describes a sample of durations.
type Summary struct {
	N                       int
	Min, P50, P95, P99, Max time.Duration
	Mean                    time.Duration
}

// Summarize sorts a copy of ds and returns its nearest-rank percentiles,
// extremes and mean. The zero Summary describes an empty sample.
func Summarize(ds []time.Duration) Summary {
	if len(ds) == 0 {
		return Summary{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	var sum float64
	for _, d := range s {
		sum += float64(d)
	}
	return Summary{
		N: len(s), Min: s[0], Max: s[len(s)-1],
		P50: Percentile(s, 50), P95: Percentile(s, 95), P99: Percentile(s, 99),
		Mean: time.Duration(sum / float64(len(s))),
	}
}

// Percentile returns the p-th percentile (0..100) of sorted by the
// nearest-rank method: the smallest value with at least p% of the sample at
// or below it. sorted must be in ascending order; an empty sample gives 0.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

// MaxInWindow returns the largest number of times that fall in any
// half-open window [t, t+w). times must be sorted ascending.
func MaxInWindow(times []time.Time, w time.Duration) int {
	best, lo := 0, 0
	for hi := range times {
		for times[hi].Sub(times[lo]) >= w {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}

// MeanRate is the average number of events per second between the first
// and the last of times (sorted ascending): (n-1) intervals over the span.
// It is 0 for fewer than two times or a zero span.
func MeanRate(times []time.Time) float64 {
	if len(times) < 2 {
		return 0
	}
	span := times[len(times)-1].Sub(times[0])
	if span <= 0 {
		return 0
	}
	return float64(len(times)-1) / span.Seconds()
}

// PerSecond counts times (sorted ascending) in consecutive one-second
// buckets starting at the first time.
func PerSecond(times []time.Time) []int {
	if len(times) == 0 {
		return nil
	}
	t0 := times[0]
	var out []int
	for _, t := range times {
		b := int(t.Sub(t0) / time.Second)
		for len(out) <= b {
			out = append(out, 0)
		}
		out[b]++
	}
	return out
}

// Rate is n events over d, per second; 0 when d is not positive.
func Rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// ms converts a duration to fractional milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
