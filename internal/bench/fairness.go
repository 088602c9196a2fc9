package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/paragonlocal"
)

// runFairness: one Connected User has a big backlog, written first (so it is
// older), then 199 other users have 10 events each. How long until every
// small user's events are delivered, and until everything is?
func runFairness(ctx context.Context, s *scenario) error {
	const bigUser = "usr_bench_big"
	const smallUsers, perSmall = 199, 10
	big := pick(s, 100_000, 5_000)
	small := smallUsers * perSmall

	db, err := s.scratch(ctx, 4)
	if err != nil {
		return err
	}
	s.progress("loading %d leads for one user, then %d for %d others", big, small, smallUsers)
	if _, err := s.loadLeads(ctx, db.Pool, big, 10_000, func(int) string { return bigUser }); err != nil {
		return err
	}
	if _, err := s.loadLeads(ctx, db.Pool, small, small, func(i int) string {
		return fmt.Sprintf("usr_bench_small_%03d", i/perSmall)
	}); err != nil {
		return err
	}
	if err := vacuum(ctx, db.Pool); err != nil {
		return err
	}
	ep, err := s.endpoint(paragonlocal.Faults{})
	if err != nil {
		return err
	}
	cfg := s.relayConfig(ep, db, "bench-fairness")
	s.progress("draining %d events", big+small)
	stopProf := s.startProfile()
	defer stopProf()
	stopSampling := s.sampleDB(ctx, db, "during the drain")
	defer stopSampling()
	start := time.Now()
	rr, err := s.startRelay(ctx, cfg)
	if err != nil {
		return err
	}
	waitErr := waitDelivered(ctx, ep, db.Pool, big+small, 30*time.Minute)
	took := time.Since(start)
	stopProf()
	stopSampling()
	if err := rr.stop(); err != nil {
		return err
	}
	if waitErr != nil {
		return waitErr
	}
	var smallSeen int
	var smallFirst, smallLast time.Time
	for _, r := range ep.Server.Received() {
		if r.Sub == bigUser {
			continue
		}
		smallSeen++
		if smallFirst.IsZero() || r.At.Before(smallFirst) {
			smallFirst = r.At
		}
		if r.At.After(smallLast) {
			smallLast = r.At
		}
	}
	if smallSeen < small {
		return fmt.Errorf("endpoint received %d of %d small-user events", smallSeen, small)
	}
	s.add("small users done", smallLast.Sub(start).Seconds(), "s", AtMost(2))
	s.add("first small event", smallFirst.Sub(start).Seconds(), "s", nil)
	s.add("all drained", took.Seconds(), "s", nil)
	s.add("throughput", Rate(int64(big+small), took), "events/s", nil)
	s.note("%d events for one user written first, then %d users x %d; times from relay start to endpoint receipt",
		big, smallUsers, perSmall)
	return nil
}
