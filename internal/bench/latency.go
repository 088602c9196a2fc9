package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/backoff"
	"github.com/paragon-outbox/outbox-relay/internal/paragonlocal"
)

// commit is when one lead's transaction returned from COMMIT.
type commit struct {
	leadID int64
	at     time.Time
}

// runLatency: a writer adds 500 leads/s, one INSERT per transaction, while a
// relay runs; each event's latency is its receipt at the endpoint minus the
// moment its COMMIT returned to the writer (one process, one clock).
func runLatency(ctx context.Context, s *scenario) error {
	const rate = 500
	dur := pick(s, 20*time.Second, 3*time.Second)
	db, err := s.scratch(ctx, 8)
	if err != nil {
		return err
	}
	ep, err := s.endpoint(paragonlocal.Faults{})
	if err != nil {
		return err
	}
	cfg := s.relayConfig(ep, db, "bench-latency")
	rr, err := s.startRelay(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() { _ = rr.stop() }() // the error of the stop below is the one reported
	// Let the relay connect and find the outbox empty before writing.
	if !backoff.Sleep(ctx, 500*time.Millisecond) {
		return ctx.Err()
	}
	s.progress("writing %d leads/s for %s with a relay running", rate, dur)
	stopProf := s.startProfile()
	defer stopProf()
	stopSampling := s.sampleDB(ctx, db, "while writing")
	defer stopSampling()
	t0 := time.Now()
	commits, err := writeSteady(ctx, db.Pool, s.leads, rate, dur, 4)
	writeTime := time.Since(t0)
	if err != nil {
		return err
	}
	if err := waitDelivered(ctx, ep, db.Pool, len(commits), 2*time.Minute); err != nil {
		return err
	}
	stopProf()
	stopSampling()
	if err := rr.stop(); err != nil {
		return err
	}

	rows, err := db.Pool.Query(ctx, `SELECT lead_id, event_id::text FROM outbox`)
	if err != nil {
		return err
	}
	eventOf := make(map[int64]string, len(commits))
	var leadID int64
	var eventID string
	if _, err := pgx.ForEachRow(rows, []any{&leadID, &eventID}, func() error { eventOf[leadID] = eventID; return nil }); err != nil {
		return err
	}
	received := make(map[string]time.Time, len(commits))
	for _, r := range ep.Server.Received() {
		if _, dup := received[r.EventID]; !dup {
			received[r.EventID] = r.At
		}
	}
	lat := make([]time.Duration, 0, len(commits))
	negative := 0
	for _, c := range commits {
		at, ok := received[eventOf[c.leadID]]
		if !ok {
			return fmt.Errorf("lead %d: its event was never received", c.leadID)
		}
		d := at.Sub(c.at)
		if d < 0 {
			negative++
		}
		lat = append(lat, d)
	}
	sum := Summarize(lat)
	s.add("p50", ms(sum.P50), "ms", AtMost(5))
	s.add("p95", ms(sum.P95), "ms", nil)
	s.add("p99", ms(sum.P99), "ms", AtMost(25))
	s.add("max", ms(sum.Max), "ms", nil)
	s.add("write rate", Rate(int64(len(commits)), writeTime), "leads/s", nil)
	s.add("events", float64(sum.N), "events", nil)
	s.note("latency = endpoint receipt - COMMIT returned to the writer; %d leads in %s by 4 connections paced at %d/s; relay poll interval %s",
		len(commits), writeTime.Round(time.Millisecond), rate, cfg.PollInterval)
	if negative > 0 {
		s.note("%d events arrived before their writer saw COMMIT return (negative latency, kept as is)", negative)
	}
	return nil
}

// writeSteady inserts leads into leads at rate per second for dur, one
// INSERT (its own transaction) per lead, spread over `writers`
// connections, and returns when each COMMIT returned. The schedule is
// open-loop: leads due while the writers are busy queue up, so a slow
// database lowers the achieved rate rather than hiding latency.
func writeSteady(ctx context.Context, pool *pgxpool.Pool, l *Leads, rate int, dur time.Duration, writers int) ([]commit, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan int, rate*int(dur/time.Second+1))
	q := InsertSQL("leads")
	var (
		mu      sync.Mutex
		commits []commit
		errs    []error
		wg      sync.WaitGroup
	)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []commit
			defer func() { mu.Lock(); commits = append(commits, mine...); mu.Unlock() }()
			for i := range jobs {
				var id int64
				if err := pool.QueryRow(ctx, q, l.Args(i, fmt.Sprintf("bench-latency-%d", i))...).Scan(&id); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					cancel()
					return
				}
				mine = append(mine, commit{leadID: id, at: time.Now()})
			}
		}()
	}
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	sent := 0
pace:
	for {
		el := time.Since(start)
		if el >= dur {
			break
		}
		for due := int(el.Seconds() * float64(rate)); sent < due; sent++ {
			jobs <- sent
		}
		select {
		case <-ctx.Done():
			break pace
		case <-tick.C:
		}
	}
	tick.Stop()
	close(jobs)
	wg.Wait()
	if len(errs) > 0 {
		return nil, fmt.Errorf("insert lead: %w", errors.Join(errs...))
	}
	return commits, ctx.Err()
}
