// Package backoff is the project's one implementation of "wait a little
// longer after each failure": capped exponential delays with equal jitter,
// and a sleep that ends early when its context does. The relay's retry
// schedule for App Events, its database retry loops and the start-up wait for
// the database all use it. It must not know about outbox rows or Paragon.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Delay returns the wait after failure number attempt (1 for the first):
// base doubled per attempt, capped at maxDelay, with "equal jitter" (half
// fixed, half random, from rnd in [0,1)), so the result lies in [d/2, d].
// It cannot overflow: doubling stops at maxDelay, and a non-positive result
// becomes maxDelay.
func Delay(attempt int32, base, maxDelay time.Duration, rnd float64) time.Duration {
	d := base
	for i := int32(1); i < attempt && d < maxDelay; i++ {
		d *= 2
	}
	if d > maxDelay || d <= 0 {
		d = maxDelay
	}
	half := d / 2
	return half + time.Duration(rnd*float64(d-half))
}

// Jittered is Delay with a random rnd.
func Jittered(attempt int32, base, maxDelay time.Duration) time.Duration {
	return Delay(attempt, base, maxDelay, rand.Float64())
}

// Sleep waits d, or less if ctx ends first; it reports whether the whole d
// elapsed (false: ctx is done).
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// PaceFactor and PaceCap shape Paced: a periodic statement waits at least
// PaceFactor times its own duration before it runs again (it takes at most
// 1/(PaceFactor+1), about 2 %, of a connection's time), and never more than
// PaceCap times its nominal interval.
const (
	PaceFactor = 50
	PaceCap    = 10
)

// Paced returns how long to wait before running again a periodic task whose
// nominal interval is interval and whose last run took took:
// interval, stretched to PaceFactor × took when that is longer, capped at
// PaceCap × interval. A task whose cost grows for a reason outside the
// relay's control (dead index entries a long transaction keeps alive: the
// claim's re-check without a low-water mark, the backlog gauges, the rescue
// and purge scans) then runs less often instead of taking more of the
// database. A non-positive interval is returned as is.
func Paced(interval, took time.Duration) time.Duration {
	if interval <= 0 {
		return interval
	}
	return min(max(interval, PaceFactor*took), PaceCap*interval)
}
