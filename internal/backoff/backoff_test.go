package backoff_test

import (
	"context"
	"testing"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/backoff"
)

func TestDelayDoublesWithEqualJitterUpToTheCap(t *testing.T) {
	for _, tc := range []struct {
		attempt int32
		rnd     float64
		want    time.Duration
	}{
		{1, 0, 50 * time.Millisecond},               // first failure: base, half fixed
		{1, 0.5, 75 * time.Millisecond},             // half of the other half
		{2, 0, 100 * time.Millisecond},              // doubled
		{3, 0, 200 * time.Millisecond},              // doubled again
		{10, 0, 500 * time.Millisecond},             // capped at 1s, half fixed
		{1 << 30, 0.999, 999500 * time.Microsecond}, // huge attempt: still capped
	} {
		if got := backoff.Delay(tc.attempt, 100*time.Millisecond, time.Second, tc.rnd); got != tc.want {
			t.Errorf("Delay(%d, 100ms, 1s, %v) = %s, want %s", tc.attempt, tc.rnd, got, tc.want)
		}
	}
	if got := backoff.Delay(100, time.Duration(1<<62), time.Duration(1<<62), 0.5); got <= 0 {
		t.Errorf("Delay overflowed: %s", got)
	}
}

func TestSleepEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if backoff.Sleep(ctx, time.Hour) {
		t.Fatal("Sleep on a cancelled context reported that an hour elapsed")
	}
	if !backoff.Sleep(context.Background(), time.Microsecond) {
		t.Fatal("Sleep with a live context reported cancellation")
	}
}

func TestPacedStretchesTheIntervalWithTheTaskUpToTheCap(t *testing.T) {
	for _, c := range []struct {
		interval, took, want time.Duration
	}{
		{10 * time.Second, 10 * time.Millisecond, 10 * time.Second},  // cheap: the nominal interval
		{10 * time.Second, 400 * time.Millisecond, 20 * time.Second}, // 50 × 400 ms
		{10 * time.Second, 5 * time.Second, 100 * time.Second},       // capped at 10 × the interval
		{2 * time.Second, 0, 2 * time.Second},
		{0, time.Second, 0},
	} {
		if got := backoff.Paced(c.interval, c.took); got != c.want {
			t.Errorf("Paced(%s, %s) = %s, want %s", c.interval, c.took, got, c.want)
		}
	}
}
