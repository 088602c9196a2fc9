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
