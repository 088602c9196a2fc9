package bench

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paragon-outbox/outbox-relay/internal/operator"
	"github.com/paragon-outbox/outbox-relay/internal/paragonlocal"
)

// runChurn: a simulated week of an outbox at 1,000,000 events a day, scaled
// down (Options.ChurnPerDay events per "day"; default 50,000, 2,000 with
// Quick). Each day the app COPYs that day's leads, a relay delivers them,
// retention deletes the previous day's events (operator.Purge, the relay's
// purge loop, with its attempts), and VACUUM runs as production autovacuum
// would after so many dead rows (autovacuum is off on this machine). It
// reports the size of outbox, outbox_attempts and every index on them after
// each day: a queue table whose space is reused stays flat from day 2 on.
func runChurn(ctx context.Context, s *scenario) error {
	perDay := s.opts.ChurnPerDay
	if perDay <= 0 {
		perDay = pick(s, 50_000, 2_000)
	}
	const days = 7
	db, err := s.scratch(ctx, 8)
	if err != nil {
		return err
	}
	ep, err := s.endpoint(paragonlocal.Faults{})
	if err != nil {
		return err
	}
	cfg := s.relayConfig(ep, db, "bench-churn")
	rr, err := s.startRelay(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() { _ = rr.stop() }()
	sizes := make([]map[string]int64, 0, days)
	var delivered int
	for day := 1; day <= days; day++ {
		var dayStart time.Time
		if err := db.Pool.QueryRow(ctx, "SELECT now()").Scan(&dayStart); err != nil {
			return err
		}
		s.progress("day %d: %d events", day, perDay)
		if _, err := s.loadLeads(ctx, db.Pool, perDay, 5000, nil); err != nil {
			return err
		}
		delivered += perDay
		if err := waitDelivered(ctx, ep, db.Pool, delivered, 10*time.Minute); err != nil {
			return fmt.Errorf("day %d: %w", day, err)
		}
		// Retention: keep one day (everything delivered before today).
		var now time.Time
		if err := db.Pool.QueryRow(ctx, "SELECT now()").Scan(&now); err != nil {
			return err
		}
		keep := max(now.Sub(dayStart), time.Millisecond)
		if _, err := operator.Purge(ctx, db.Pool, keep, keep, 500); err != nil {
			return fmt.Errorf("day %d: purge: %w", day, err)
		}
		if _, err := db.Pool.Exec(ctx, "VACUUM outbox, outbox_attempts"); err != nil {
			return err
		}
		sz, err := relationSizes(ctx, db)
		if err != nil {
			return err
		}
		sizes = append(sizes, sz)
	}
	if err := rr.stop(); err != nil {
		return err
	}
	var upd, hot int64
	if _, err := db.Pool.Exec(ctx, "SELECT pg_stat_clear_snapshot()"); err != nil {
		return err
	}
	if err := db.Pool.QueryRow(ctx, `SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relid = 'outbox'::regclass`).Scan(&upd, &hot); err != nil {
		return err
	}
	s.add("outbox updates that were HOT", 100*float64(hot)/float64(max(upd, 1)), "%", nil)
	names := make([]string, 0, len(sizes[0]))
	for n := range sizes[len(sizes)-1] {
		names = append(names, n)
	}
	slices.Sort(names)
	var total2, total7 int64
	for _, n := range names {
		s.add(fmt.Sprintf("%s after day 2", n), mib(sizes[1][n]), "MiB", nil)
		s.add(fmt.Sprintf("%s after day 7", n), mib(sizes[days-1][n]), "MiB", nil)
		total2 += sizes[1][n]
		total7 += sizes[days-1][n]
	}
	s.add("outbox tables and indexes, day 7 / day 2", float64(total7)/float64(max(total2, 1)), "x", AtMost(1.25))
	s.note("%d events/day for %d days (1,000,000/day scaled by %.3f); retention keeps one day; VACUUM (not FULL) after each day's purge stands in for autovacuum", perDay, days, float64(perDay)/1e6)
	return nil
}

// relationSizes returns the size in bytes of outbox, outbox_attempts and
// each of their indexes, by name.
func relationSizes(ctx context.Context, db *database) (map[string]int64, error) {
	rows, err := db.Pool.Query(ctx, `
		SELECT c.relname::text, pg_relation_size(c.oid)
		FROM pg_class AS c
		WHERE c.oid IN ('outbox'::regclass, 'outbox_attempts'::regclass)
		   OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid IN ('outbox'::regclass, 'outbox_attempts'::regclass))`)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	var name string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&name, &n}, func() error { out[name] = n; return nil })
	return out, err
}
