package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/paragonlocal"
)

// drainSize is the backlog of the drain and memory scenarios.
func drainSize(s *scenario) int {
	if s.opts.DrainBacklog > 0 {
		return s.opts.DrainBacklog
	}
	return pick(s, 100_000, 5_000)
}

// runDrain: a backlog of pending leads (leads.csv loaded repeatedly with
// COPY, through the trigger) drained by one relay with default settings.
func runDrain(ctx context.Context, s *scenario) error {
	n := drainSize(s)
	db, err := s.scratch(ctx, 4)
	if err != nil {
		return err
	}
	s.progress("loading %d leads (COPY through the trigger)", n)
	t0 := time.Now()
	loaded, err := s.loadLeads(ctx, db.Pool, n, 10_000, nil)
	if err != nil {
		return err
	}
	load := time.Since(t0)
	if err := vacuum(ctx, db.Pool); err != nil {
		return err
	}
	ep, err := s.endpoint(paragonlocal.Faults{})
	if err != nil {
		return err
	}
	cfg := s.relayConfig(ep, db, "bench-drain")
	s.progress("draining %d events", loaded)
	stopProf := s.startProfile()
	defer stopProf()
	stopSampling := s.sampleDB(ctx, db, "during the drain")
	defer stopSampling()
	start := time.Now()
	rr, err := s.startRelay(ctx, cfg)
	if err != nil {
		return err
	}
	waitErr := waitDelivered(ctx, ep, db.Pool, int(loaded), 30*time.Minute)
	took := time.Since(start)
	stopProf()
	stopSampling()
	if err := rr.stop(); err != nil {
		return err
	}
	if waitErr != nil {
		return waitErr
	}
	delivered, dead, err := outcomeCounts(ctx, db.Pool)
	if err != nil {
		return err
	}
	if delivered != loaded {
		return fmt.Errorf("delivered %d of %d events (%d dead)", delivered, loaded, dead)
	}
	s.add("throughput", Rate(delivered, took), "events/s", AtLeast(15_000))
	s.add("drain time", took.Seconds(), "s", nil)
	s.add("backlog", float64(loaded), "events", nil)
	s.add("duplicates", float64(duplicates(ep)), "events", nil)
	s.note("loaded %d leads with COPY through the trigger in %s (%.0f leads/s); drained with concurrency %d, batch %d",
		loaded, load.Round(time.Millisecond), Rate(loaded, load), cfg.Concurrency, cfg.BatchSize)
	return nil
}
