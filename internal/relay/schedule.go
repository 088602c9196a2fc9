package relay

import (
	"context"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/backoff"
)

// every calls f every interval (and once at once if now) until ctx ends.
func every(ctx context.Context, interval time.Duration, now bool, f func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	if now {
		f()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f()
	}
}

// everyPaced runs f (at once when now) and then again after
// backoff.Paced(interval, how long f took): like every, but a run that
// takes long (its statement walking dead index entries a long transaction
// keeps alive) spaces out the next one, up to backoff.PaceCap × interval.
func everyPaced(ctx context.Context, interval time.Duration, now bool, f func()) {
	run := func() time.Duration {
		start := time.Now()
		f()
		return time.Since(start)
	}
	wait := interval
	if now {
		wait = backoff.Paced(interval, run())
	}
	for backoff.Sleep(ctx, wait) {
		wait = backoff.Paced(interval, run())
	}
}
