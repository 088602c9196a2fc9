package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/paragonlocal"
)

// runScaleout: with Paragon answering in 50 ms, throughput is bound by sends
// in flight. One relay at concurrency 16, 64 and 256, then 2 and 4 relays
// (in this process, distinct relay ids) at concurrency 64. Each point drains
// its own backlog, sized to about ten seconds of ideal throughput (capped).
func runScaleout(ctx context.Context, s *scenario) error {
	const latency = 50 * time.Millisecond
	maxEvents := pick(s, 20_000, 2_000)
	ideal := pick(s, 10*time.Second, 2*time.Second)
	points := []struct{ relays, concurrency int }{{1, 16}, {1, 64}, {1, 256}, {2, 64}, {4, 64}}

	db, err := s.scratch(ctx, 4)
	if err != nil {
		return err
	}
	ep, err := s.endpoint(paragonlocal.Faults{Latency: latency})
	if err != nil {
		return err
	}
	stopProf := s.startProfile()
	defer stopProf()
	for _, p := range points {
		// Ideal rate: every relay's sends all busy, each taking `latency`.
		idealRate := float64(p.relays*p.concurrency) / latency.Seconds()
		n := min(maxEvents, max(500, int(idealRate*ideal.Seconds())))
		if _, err := db.Pool.Exec(ctx, `TRUNCATE leads, outbox CASCADE`); err != nil {
			return err
		}
		if _, err := s.loadLeads(ctx, db.Pool, n, 10_000, nil); err != nil {
			return err
		}
		if err := vacuum(ctx, db.Pool); err != nil {
			return err
		}
		ep.Server.Reset()
		s.progress("%d relay(s) x concurrency %d: draining %d events", p.relays, p.concurrency, n)
		label := fmt.Sprintf("%d relay x c%d", p.relays, p.concurrency)
		stopSampling := s.sampleDB(ctx, db, "at "+label)
		start := time.Now()
		var running []*runningRelay
		var startErr error
		for k := range p.relays {
			cfg := s.relayConfig(ep, db, fmt.Sprintf("bench-scaleout-%d", k))
			cfg.Concurrency = p.concurrency
			rr, err := s.startRelay(ctx, cfg)
			if err != nil {
				startErr = err
				break
			}
			running = append(running, rr)
		}
		var waitErr error
		if startErr == nil {
			waitErr = waitDelivered(ctx, ep, db.Pool, n, 10*time.Minute)
		}
		took := time.Since(start)
		stopSampling()
		for _, rr := range running {
			if err := rr.stop(); err != nil && startErr == nil {
				startErr = err
			}
		}
		if startErr != nil {
			return startErr
		}
		if waitErr != nil {
			return waitErr
		}
		rate, span := steadyRate(ep.Server.Received(), n)
		s.add(label, rate, "events/s", nil)
		s.note("%s: %d events drained %s after relay start; %.0f/s between the 10%% and 100%% receipts (%s), %.0f%% of the ideal %.0f/s",
			label, n, took.Round(time.Millisecond), rate, span.Round(time.Millisecond), 100*rate/idealRate, idealRate)
	}
	s.note("endpoint latency %s on every request; rates leave out relay start-up (first 10%% of receipts); ideal = relays x concurrency / latency", latency)
	return nil
}
