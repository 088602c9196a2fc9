package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paragon-outbox/outbox-relay/internal/backoff"
	"github.com/paragon-outbox/outbox-relay/internal/paragonlocal"
)

// runSnapshot: the latency scenario twice, side by side in one run: once
// plain, once while another session of the same database holds a
// REPEATABLE READ snapshot (an analytics query, a pg_dump) for the whole
// run, so that no dead outbox row version or index entry can be removed.
// It reports p50/p99 commit-to-endpoint latency per 10 s window of commit
// time, and the dead outbox tuples left at the end.
// Options.SnapshotDuration sets each run's length (default 60 s; 10 min is
// the target run).
func runSnapshot(ctx context.Context, s *scenario) error {
	const vacuumEvery = time.Minute
	dur := s.opts.SnapshotDuration
	if dur <= 0 {
		dur = pick(s, 60*time.Second, 6*time.Second)
	}
	const window = 10 * time.Second
	type result struct {
		windows    []Summary
		all        Summary
		deadTuples int64
	}
	results := map[bool]result{}
	for _, hold := range []bool{false, true} {
		label := map[bool]string{false: "without snapshot", true: "with snapshot held"}[hold]
		db, err := s.scratch(ctx, 8)
		if err != nil {
			return err
		}
		ep, err := s.endpoint(paragonlocal.Faults{})
		if err != nil {
			return err
		}
		cfg := s.relayConfig(ep, db, "bench-snapshot")
		rr, err := s.startRelay(ctx, cfg)
		if err != nil {
			return err
		}
		if !backoff.Sleep(ctx, 500*time.Millisecond) {
			_ = rr.stop()
			return ctx.Err()
		}
		var holder *pgx.Conn
		if hold {
			holder, err = pgx.Connect(ctx, db.URL)
			if err != nil {
				_ = rr.stop()
				return err
			}
			if _, err := holder.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ"); err != nil {
				_ = rr.stop()
				return err
			}
			// The snapshot is taken by the first statement.
			if _, err := holder.Exec(ctx, "SELECT count(*) FROM outbox"); err != nil {
				_ = rr.stop()
				return err
			}
		}
		s.progress("%s: writing 500 leads/s for %s", label, dur)
		// Autovacuum is off on this project's machines; production's
		// (autovacuum_naptime 1 min, migration 00011's thresholds: 1,000
		// + 2 % dead rows, passed every minute at 500 leads/s) vacuums the
		// outbox (and ANALYZEs it) about once a minute. Do the same on both sides, so that
		// the run without the snapshot shows the relay as production would
		// run it, and the one with it shows only what the held horizon
		// costs (VACUUM then runs but may remove nothing).
		vacCtx, stopVacuum := context.WithCancel(ctx)
		vacDone := make(chan struct{})
		go func() {
			defer close(vacDone)
			// One session of its own, throttled as autovacuum is
			// (autovacuum_vacuum_cost_delay 2 ms, migration 00011's cost
			// limit 2000), not at a manual VACUUM's full speed.
			conn, err := db.Pool.Acquire(vacCtx)
			if err != nil {
				return
			}
			defer func() {
				_, _ = conn.Exec(context.Background(), "RESET ALL")
				conn.Release()
			}()
			if _, err := conn.Exec(vacCtx, "SET vacuum_cost_delay = '2ms'"); err != nil {
				s.progress("%s: VACUUM settings: %v", label, err)
			}
			if _, err := conn.Exec(vacCtx, "SET vacuum_cost_limit = 2000"); err != nil {
				s.progress("%s: VACUUM settings: %v", label, err)
			}
			for backoff.Sleep(vacCtx, vacuumEvery) {
				if _, err := conn.Exec(vacCtx, "VACUUM ANALYZE outbox, outbox_attempts"); err != nil && vacCtx.Err() == nil {
					s.progress("%s: VACUUM: %v", label, err)
				}
			}
		}()
		t0 := time.Now()
		commits, err := writeSteady(ctx, db.Pool, s.leads, 500, dur, 4)
		if err == nil {
			err = waitDelivered(ctx, ep, db.Pool, len(commits), max(5*time.Minute, dur))
		}
		stopVacuum()
		<-vacDone
		var dead int64
		if err == nil {
			err = db.Pool.QueryRow(ctx, `SELECT coalesce(sum(n_dead_tup), 0) FROM pg_stat_user_tables WHERE relname LIKE 'outbox%'`).Scan(&dead)
		}
		if holder != nil {
			_ = holder.Close(ctx)
		}
		if stopErr := rr.stop(); err == nil {
			err = stopErr
		}
		if err != nil {
			return fmt.Errorf("%s: %w", label, err)
		}
		lat, at, err := commitLatencies(ctx, db, ep, commits)
		if err != nil {
			return err
		}
		var r result
		r.all = Summarize(lat)
		byWindow := map[int][]time.Duration{}
		last := 0
		for i, d := range lat {
			w := int(at[i].Sub(t0) / window)
			if full := max(1, int(dur/window)); w >= full {
				// A commit after the nominal end (the writers' last
				// transactions) counts in the last full window.
				w = full - 1
			}
			byWindow[w] = append(byWindow[w], d)
			last = max(last, w)
		}
		for w := 0; w <= last; w++ {
			r.windows = append(r.windows, Summarize(byWindow[w]))
		}
		r.deadTuples = dead
		results[hold] = r
	}
	off, on := results[false], results[true]
	for w := 0; w < max(len(off.windows), len(on.windows)); w++ {
		for _, side := range []struct {
			name string
			r    result
		}{{"without", off}, {"with", on}} {
			if w < len(side.r.windows) && side.r.windows[w].N > 0 {
				sum := side.r.windows[w]
				s.add(fmt.Sprintf("%3d-%3ds %s snapshot p50", w*10, w*10+10, side.name), ms(sum.P50), "ms", nil)
				s.add(fmt.Sprintf("%3d-%3ds %s snapshot p99", w*10, w*10+10, side.name), ms(sum.P99), "ms", nil)
			}
		}
	}
	s.add("p99 without snapshot (whole run)", ms(off.all.P99), "ms", nil)
	s.add("p99 with snapshot (whole run)", ms(on.all.P99), "ms", nil)
	s.add("p99 with / without snapshot (whole run)", ms(on.all.P99)/max(ms(off.all.P99), 0.001), "x", AtMost(2))
	lastOff, lastOn := off.windows[len(off.windows)-1], on.windows[len(on.windows)-1]
	s.add("last window p99 with / without snapshot", ms(lastOn.P99)/max(ms(lastOff.P99), 0.001), "x", nil)
	s.add("dead outbox tuples at the end, with snapshot", float64(on.deadTuples), "tuples", nil)
	s.note("each run: 500 leads/s for %s, one INSERT per transaction, 4 writers; latency = endpoint receipt - COMMIT returned; windows by commit time; the snapshot is a REPEATABLE READ transaction in the same database, open from before the first lead to the last delivery; VACUUM ANALYZE outbox, outbox_attempts every %s on both sides, throttled as autovacuum is (cost delay 2 ms, limit 2000)", dur, vacuumEvery)
	return nil
}

// commitLatencies matches each commit to its event's first receipt: it returns
// the latency and the commit time of each, in commit order.
func commitLatencies(ctx context.Context, db *database, ep *Endpoint, commits []commit) ([]time.Duration, []time.Time, error) {
	rows, err := db.Pool.Query(ctx, `SELECT lead_id, event_id::text FROM outbox`)
	if err != nil {
		return nil, nil, err
	}
	eventOf := make(map[int64]string, len(commits))
	var leadID int64
	var eventID string
	if _, err := pgx.ForEachRow(rows, []any{&leadID, &eventID}, func() error { eventOf[leadID] = eventID; return nil }); err != nil {
		return nil, nil, err
	}
	received := make(map[string]time.Time, len(commits))
	for _, r := range ep.Server.Received() {
		if _, dup := received[r.EventID]; !dup {
			received[r.EventID] = r.At
		}
	}
	lat := make([]time.Duration, 0, len(commits))
	at := make([]time.Time, 0, len(commits))
	for _, c := range commits {
		r, ok := received[eventOf[c.leadID]]
		if !ok {
			return nil, nil, fmt.Errorf("lead %d: its event was never received", c.leadID)
		}
		lat = append(lat, r.Sub(c.at))
		at = append(at, c.at)
	}
	return lat, at, nil
}
