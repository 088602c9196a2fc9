package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/paragonlocal"
)

// genKeyed writes events $1..$2 (ids) as outbox_enqueue would: event i has
// ordering key 'key:' || (i % $3) (NULL when $3 is 0) and its key's
// Connected User; the first event of each key is pending, the others wait
// behind it. $4 is the payload template.
const genKeyed = `
	INSERT INTO outbox (id, event_id, event_name, user_id, payload, ordering_key, status, next_attempt_at, created_at)
	SELECT i, u, 'Step Recorded',
	       'usr_bench_' || (CASE WHEN $3::bigint = 0 THEN i ELSE i % $3::bigint END % 200),
	       $4::jsonb || jsonb_build_object('eventId', u, 'n', i),
	       CASE WHEN $3::bigint = 0 THEN NULL ELSE 'key:' || (i % $3::bigint) END,
	       CASE WHEN $3::bigint = 0 OR i - $1::bigint < $3::bigint THEN 'pending' ELSE 'waiting' END,
	       ts, ts
	FROM (SELECT i, outbox_uuidv7() AS u, now() - interval '1 hour' + i * interval '1 microsecond' AS ts
	      FROM generate_series($1::bigint, $2::bigint) AS i OFFSET 0) g`

// runOrdering: the cost of per-key ordering. The same backlog of events is
// drained by one relay with default settings three times: without ordering
// keys, over 10,000 keys and over 10 keys (events of a key go one at a
// time, in id order). Each drain also checks the order the endpoint
// received each key's events in. Then the claim is timed and EXPLAINed
// with 10,000 and 1,000,000 pending keyed events (every one its key's
// head, so each is checked against the key index: the worst case).
func runOrdering(ctx context.Context, s *scenario) error {
	n := pick(s, 100_000, 5_000)
	ep, err := s.endpoint(paragonlocal.Faults{})
	if err != nil {
		return err
	}
	var unkeyed float64
	for _, keys := range []int{0, 10_000, 10} {
		label := "unkeyed"
		if keys > 0 {
			label = fmt.Sprintf("%s keys", countLabel(keys))
		}
		db, err := s.scratch(ctx, 4)
		if err != nil {
			return err
		}
		s.progress("%s: generating %d events", label, n)
		if _, err := db.Pool.Exec(ctx, genKeyed, 1, n, keys, payloadTemplate); err != nil {
			return err
		}
		if err := vacuum(ctx, db.Pool); err != nil {
			return err
		}
		_, plans, err := timeClaims(ctx, db.URL, 3)
		if err != nil {
			return fmt.Errorf("%s: %w", label, err)
		}
		if len(plans) > 0 {
			s.note("EXPLAIN (ANALYZE, BUFFERS) of the claim, %d events %s, before the drain (rolled back):\n%s", n, label, plans[0])
		}
		ep.Server.Reset()
		cfg := s.relayConfig(ep, db, "bench-ordering")
		s.progress("%s: draining %d events", label, n)
		start := time.Now()
		rr, err := s.startRelay(ctx, cfg)
		if err != nil {
			return err
		}
		waitErr := waitDelivered(ctx, ep, db.Pool, n, 30*time.Minute)
		took := time.Since(start)
		if err := rr.stop(); err != nil {
			return err
		}
		if waitErr != nil {
			return fmt.Errorf("%s: %w", label, waitErr)
		}
		bad, err := orderViolations(ctx, db.Pool, ep)
		if err != nil {
			return err
		}
		rate := Rate(int64(n), took)
		s.add("drain "+label, rate, "events/s", nil)
		s.add("order violations "+label, float64(bad), "events", AtMost(0))
		if keys == 0 {
			unkeyed = rate
		} else {
			s.add("drain "+label+" / unkeyed", 100*rate/unkeyed, "%", nil)
		}
		s.note("%s: %d events drained in %s (%.0f/s), concurrency %d, batch %d", label, n, took.Round(time.Millisecond), rate, cfg.Concurrency, cfg.BatchSize)
	}

	// The claim with many keyed pending events (all heads).
	for _, pending := range []int{pick(s, 10_000, 10_000), pick(s, 1_000_000, 50_000)} {
		db, err := s.scratch(ctx, 4)
		if err != nil {
			return err
		}
		s.progress("claim: generating %d pending keyed events (one per key)", pending)
		const chunk = 250_000
		for lo := 1; lo <= pending; lo += chunk {
			hi := min(lo+chunk-1, pending)
			// keys = pending: every event is the first of its own key.
			if _, err := db.Pool.Exec(ctx, genKeyed, lo, hi, pending+1, payloadTemplate); err != nil {
				return err
			}
		}
		if err := vacuum(ctx, db.Pool); err != nil {
			return err
		}
		claim, plans, err := timeClaims(ctx, db.URL, pick(s, 20, 5))
		if err != nil {
			return err
		}
		s.add("claim 500 keyed p50 @"+countLabel(pending), ms(claim.P50), "ms", nil)
		for _, p := range plans {
			s.note("EXPLAIN (ANALYZE, BUFFERS) of the claim at %s pending keyed events (rolled back):\n%s", countLabel(pending), p)
		}
	}
	s.note("events generated as outbox_enqueue writes them (first event of a key pending, the others waiting), 200 Connected Users, ~600-byte payloads; a key's events go one at a time, so 10 keys cap the drain at 10 events in flight")
	return nil
}

// orderViolations counts events the endpoint accepted after a later event
// (higher outbox id) of the same ordering key.
func orderViolations(ctx context.Context, pool *pgxpool.Pool, ep *Endpoint) (int, error) {
	rows, err := pool.Query(ctx, `SELECT event_id::text, id, ordering_key FROM outbox WHERE ordering_key IS NOT NULL`)
	if err != nil {
		return 0, err
	}
	type ev struct {
		id  int64
		key string
	}
	byEID := map[string]ev{}
	for rows.Next() {
		var eid string
		var e ev
		if err := rows.Scan(&eid, &e.id, &e.key); err != nil {
			rows.Close()
			return 0, err
		}
		byEID[eid] = e
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	last := map[string]int64{}
	bad := 0
	for _, rc := range ep.Server.Received() {
		e, ok := byEID[rc.EventID]
		if !ok {
			continue
		}
		if e.id < last[e.key] {
			bad++
		}
		last[e.key] = max(last[e.key], e.id)
	}
	return bad, nil
}
