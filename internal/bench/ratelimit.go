package bench

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/paragonlocal"
)

// runRateLimit: a relay with RELAY_RATE_LIMIT (2000/s unless configured)
// drains a backlog; the endpoint's receipt times give the achieved rate: the
// busiest one-second window and the mean.
func runRateLimit(ctx context.Context, s *scenario) error {
	n := pick(s, 20_000, 4_000)
	db, err := s.scratch(ctx, 4)
	if err != nil {
		return err
	}
	if _, err := s.loadLeads(ctx, db.Pool, n, 10_000, nil); err != nil {
		return err
	}
	if err := vacuum(ctx, db.Pool); err != nil {
		return err
	}
	ep, err := s.endpoint(paragonlocal.Faults{})
	if err != nil {
		return err
	}
	cfg := s.relayConfig(ep, db, "bench-ratelimit")
	if cfg.RateLimit == 0 {
		cfg.RateLimit = 2000
	}
	limit := cfg.RateLimit
	s.progress("draining %d events at a limit of %.0f/s", n, limit)
	stopProf := s.startProfile()
	defer stopProf()
	rr, err := s.startRelay(ctx, cfg)
	if err != nil {
		return err
	}
	waitErr := waitDelivered(ctx, ep, db.Pool, n, 30*time.Minute)
	stopProf()
	if err := rr.stop(); err != nil {
		return err
	}
	if waitErr != nil {
		return waitErr
	}
	recv := ep.Server.Received()
	times := make([]time.Time, len(recv))
	for i, r := range recv {
		times[i] = r.At
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	if len(times) < 2 {
		return fmt.Errorf("endpoint received %d events", len(times))
	}
	burst := max(1, limit/100) // the relay's limiter burst: 1% of a second's worth
	// A token bucket lets limit + burst through in any one second, and
	// exactly `limit` per second once its burst is spent. The mean leaves out
	// the first second, where sends held up by start-up (connections,
	// token signing) arrive bunched.
	i := sort.Search(len(times), func(i int) bool { return times[i].Sub(times[0]) >= time.Second })
	steady := times[min(i, len(times)-2):]
	s.add("max 1s window", float64(MaxInWindow(times, time.Second)), "requests", AtMost(limit+burst))
	s.add("mean rate after 1s", MeanRate(steady), "requests/s", AtMost(limit*1.01))
	s.add("mean rate", MeanRate(times), "requests/s", nil)
	s.add("limit", limit, "requests/s", nil)
	s.note("%d events; ceilings: limit + a burst of limit/100 (%.0f) in any 1 s window (max 5 s window: %d, ceiling %.0f); the mean may exceed the limit by 1%% (receipt-time jitter); per-second counts: %v",
		len(times), burst, MaxInWindow(times, 5*time.Second), 5*limit+burst, PerSecond(times))
	return nil
}
