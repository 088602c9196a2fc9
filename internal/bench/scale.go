package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/dbsqlc"
	"github.com/paragon-outbox/outbox-relay/internal/outbox"
	"github.com/paragon-outbox/outbox-relay/internal/paragonlocal"
)

// payloadTemplate is the fixed part of a generated event's payload; with
// eventId, leadId and externalId added it is about 600 bytes of JSON, like
// an event of leads.csv.
const payloadTemplate = `{"firstName":"Sahra","lastName":"Kohrt","email":"sahra.kohrt@hotmail.com","company":"Menne, Liebich und Seidel, Inc.","title":"Head of Operations","phone":"+49 30 1234567","leadSource":"Webinar","status":"Open - Not Contacted","country":"Germany","annualRevenue":4200000,"numberOfEmployees":250,"description":"Aspernatur eius aperiam nisi ipsam. Necessitatibus magni ea mollitia excepturi excepturi rem. Explicabo ratione reprehenderit nulla necessitatibus amet quam. Vel reiciendis assumenda.","createdAt":"2026-09-01T00:12:19.678Z"}`

// runScale: does the claim, and so the drain rate, stay flat as the backlog
// grows beside millions of delivered rows? Outbox rows are generated
// directly (INSERT ... SELECT generate_series, secondary indexes dropped
// during the load and rebuilt), first D delivered + the small backlog, then
// the large backlog on top; after each, VACUUM ANALYZE, the claim is timed
// on a probe relay id (each claim released again) and explained, and a relay
// drains the first events.
func runScale(ctx context.Context, s *scenario) error {
	delivered := pick(s, 5_000_000, 200_000)
	small, large := pick(s, 10_000, 10_000), pick(s, 1_000_000, 100_000)
	drainFirst := pick(s, 50_000, 10_000)
	reps := pick(s, 50, 20)

	db, err := s.scratch(ctx, 4)
	if err != nil {
		return err
	}
	ep, err := s.endpoint(paragonlocal.Faults{})
	if err != nil {
		return err
	}
	type point struct {
		backlog int
		claim   Summary
		rate    float64
	}
	var points []point
	next := int64(1)
	for i, backlog := range []int{small, large} {
		t0 := time.Now()
		var gen []genRange
		if i == 0 {
			s.progress("generating %d delivered + %d pending outbox rows", delivered, backlog)
			gen = append(gen, genRange{from: next, n: int64(delivered), status: "delivered"})
			next += int64(delivered)
		} else {
			s.progress("generating %d more pending outbox rows", backlog)
		}
		gen = append(gen, genRange{from: next, n: int64(backlog), status: "pending"})
		next += int64(backlog)
		if err := generateOutbox(ctx, db.Pool, gen, s.progress); err != nil {
			return err
		}
		var size string
		if err := db.Pool.QueryRow(ctx, `SELECT pg_size_pretty(pg_total_relation_size('outbox'))`).Scan(&size); err != nil {
			return err
		}
		pending, err := unsettled(ctx, db.Pool)
		if err != nil {
			return err
		}
		s.note("backlog %s: generated and vacuumed in %s; outbox %s with indexes, %d pending", countLabel(backlog), time.Since(t0).Round(time.Second), size, pending)

		s.progress("timing %d claims of 500 at backlog %s", reps, countLabel(backlog))
		claim, plans, err := timeClaims(ctx, db.URL, reps)
		if err != nil {
			return err
		}
		s.note("claim of 500 at backlog %s over %d runs: mean %.2f ms, p50 %.2f ms, first %.2f ms, max %.2f ms",
			countLabel(backlog), claim.N, ms(claim.Mean), ms(claim.P50), ms(claim.first), ms(claim.Max))
		for _, p := range plans {
			s.note("EXPLAIN (ANALYZE, BUFFERS) of the claim at backlog %s (rolled back):\n%s", countLabel(backlog), p)
		}
		// The relay's backlog gauges run every 10 s whatever the backlog.
		if p, err := explain(ctx, db.Pool, dbsqlc.Gauges, nil); err == nil {
			s.note("EXPLAIN (ANALYZE, BUFFERS) of the gauges query (sql/queries/gauges.sql) at backlog %s:\n%s", countLabel(backlog), p)
		} else {
			s.note("EXPLAIN of the gauges query failed: %v", err)
		}

		n := min(drainFirst, backlog)
		s.progress("draining the first %d events at backlog %s", n, countLabel(backlog))
		ep.Server.Reset()
		cfg := s.relayConfig(ep, db, fmt.Sprintf("bench-scale-%d", i))
		stopProf := func() {}
		if i == 1 {
			stopProf = s.startProfile()
		}
		stopSampling := s.sampleDB(ctx, db, "during the drain at backlog "+countLabel(backlog))
		start := time.Now()
		rr, err := s.startRelay(ctx, cfg)
		if err != nil {
			stopProf()
			stopSampling()
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
		waitErr := ep.Server.WaitForCount(wctx, n)
		cancel()
		stopProf()
		stopSampling()
		if err := rr.stop(); err != nil {
			return err
		}
		if waitErr != nil {
			return fmt.Errorf("drain at backlog %d: %w (endpoint accepted %d of %d)", backlog, waitErr, ep.Server.Count(), n)
		}
		rate, span := steadyRate(ep.Server.Received(), n)
		s.note("drain at backlog %s: %d events accepted %s after relay start; steady rate over events %d..%d: %.0f/s in %s",
			countLabel(backlog), n, time.Since(start).Round(time.Millisecond), n/10+1, n, rate, span.Round(time.Millisecond))
		points = append(points, point{backlog: backlog, claim: claim.Summary, rate: rate})
		// The relay's leftovers (claimed beyond n, released at shutdown) stay
		// pending; the next phase adds its backlog on top.
	}
	a, b := points[0], points[1]
	la, lb := countLabel(a.backlog), countLabel(b.backlog)
	s.add("claim 500 mean @"+la, ms(a.claim.Mean), "ms", nil)
	s.add("claim 500 mean @"+lb, ms(b.claim.Mean), "ms", nil)
	s.add("claim 500 p50 @"+la, ms(a.claim.P50), "ms", nil)
	s.add("claim 500 p50 @"+lb, ms(b.claim.P50), "ms", nil)
	// The median, not the mean: one claim stalled by other load on the
	// machine must not decide whether the claim scales.
	s.add("claim p50 ratio "+lb+"/"+la, ms(b.claim.P50)/ms(a.claim.P50), "x", AtMost(1.5))
	s.add("drain @"+la, a.rate, "events/s", nil)
	s.add("drain @"+lb, b.rate, "events/s", nil)
	s.add("drain ratio "+lb+"/"+la, 100*b.rate/a.rate, "%", AtLeast(80))
	s.note("%d delivered rows kept (no outbox_attempts rows generated for them), 200 Connected Users; drain = the first %d events (all of a smaller backlog), rate between endpoint receipts of the 10%% and 100%% marks (leaves out relay start-up and token signing); claim flat = median within 1.5x",
		delivered, drainFirst)
	return nil
}

// steadyRate is the receipt rate of the first n events at the endpoint
// between the receipt of event n/10 and of event n, and that span.
func steadyRate(recv []paragonlocal.Received, n int) (float64, time.Duration) {
	times := make([]time.Time, len(recv))
	for i, r := range recv {
		times[i] = r.At
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	n = min(n, len(times))
	k := n / 10
	if n-k < 2 {
		return 0, 0
	}
	return MeanRate(times[k:n]), times[n-1].Sub(times[k])
}

// genDelivered and genPending insert outbox rows $1..$2 (ids and lead
// ids) with payload $3 plus eventId, leadId and externalId; event ids are
// time-ordered like the trigger's (outbox_uuidv7).
const (
	genDelivered = `
		INSERT INTO outbox (id, event_id, event_name, user_id, lead_id, payload, status, attempts, next_attempt_at, created_at, delivered_at)
		SELECT i, u, 'Lead Created', 'usr_bench_' || (i % 200), i,
		       $3::jsonb || jsonb_build_object('eventId', u, 'leadId', i, 'externalId', md5(i::text)),
		       'delivered', 1, ts, ts, ts + interval '1 second'
		FROM (SELECT i, outbox_uuidv7() AS u, now() - interval '30 days' + i * interval '100 microseconds' AS ts
		      FROM generate_series($1::bigint, $2::bigint) AS i OFFSET 0) g`
	genPending = `
		INSERT INTO outbox (id, event_id, event_name, user_id, lead_id, payload, status, attempts, next_attempt_at, created_at)
		SELECT i, u, 'Lead Created', 'usr_bench_' || (i % 200), i,
		       $3::jsonb || jsonb_build_object('eventId', u, 'leadId', i, 'externalId', md5(i::text)),
		       'pending', 0, ts, ts
		FROM (SELECT i, outbox_uuidv7() AS u, now() - interval '1 hour' + i * interval '1 microsecond' AS ts
		      FROM generate_series($1::bigint, $2::bigint) AS i OFFSET 0) g`
)

// genRange is a run of generated outbox rows: ids from..from+n-1, each its
// own lead id, all in one status ("delivered" or "pending").
type genRange struct {
	from, n int64
	status  string
}

// generateOutbox inserts the ranges into outbox with INSERT ... SELECT
// generate_series, with the secondary indexes dropped meanwhile and built
// again afterwards (much faster than maintaining them row by row), then
// runs VACUUM ANALYZE. Constraint indexes (the primary key) stay.
func generateOutbox(ctx context.Context, pool *pgxpool.Pool, ranges []genRange, progress func(string, ...any)) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SET maintenance_work_mem = '256MB'`); err != nil {
		return err
	}
	defer func() { _, _ = conn.Exec(context.Background(), `RESET maintenance_work_mem`) }()
	rows, err := conn.Query(ctx, `
		SELECT i.relname, pg_get_indexdef(i.oid)
		FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
		WHERE x.indrelid = 'outbox'::regclass
		  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)`)
	if err != nil {
		return err
	}
	type index struct{ name, def string }
	var idx []index
	var ix index
	if _, err := pgx.ForEachRow(rows, []any{&ix.name, &ix.def}, func() error { idx = append(idx, ix); return nil }); err != nil {
		return err
	}
	for _, ix := range idx {
		if _, err := conn.Exec(ctx, `DROP INDEX `+pgx.Identifier{ix.name}.Sanitize()); err != nil {
			return err
		}
	}
	// Chunks of rows, inserted by two connections at once (one per core of
	// a small machine).
	const chunk = 500_000
	type job struct {
		status string
		lo, hi int64
	}
	var jobs []job
	for _, r := range ranges {
		for off := int64(0); off < r.n; off += chunk {
			jobs = append(jobs, job{r.status, r.from + off, r.from + min(off+chunk, r.n) - 1})
		}
	}
	next := make(chan job, len(jobs))
	for _, j := range jobs {
		next <- j
	}
	close(next)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		firstEr error
		done    int64
	)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				q := genPending
				if j.status == "delivered" {
					q = genDelivered
				}
				_, err := pool.Exec(ctx, q, j.lo, j.hi, payloadTemplate)
				mu.Lock()
				if err != nil && firstEr == nil {
					firstEr = fmt.Errorf("generate %s rows %d..%d: %w", j.status, j.lo, j.hi, err)
				}
				done += j.hi - j.lo + 1
				d := done
				mu.Unlock()
				if err != nil {
					return
				}
				progress("  %d rows generated", d)
			}
		}()
	}
	wg.Wait()
	if firstEr != nil {
		return firstEr
	}
	for _, ix := range idx {
		if _, err := conn.Exec(ctx, ix.def); err != nil {
			return fmt.Errorf("rebuild index %s: %w", ix.name, err)
		}
	}
	// Identity columns keep counting after the generated ids.
	if _, err := conn.Exec(ctx, `SELECT setval(pg_get_serial_sequence('outbox', 'id'), (SELECT max(id) FROM outbox))`); err != nil {
		return err
	}
	progress("  indexes rebuilt; VACUUM ANALYZE")
	_, err = conn.Exec(ctx, `VACUUM ANALYZE outbox`)
	return err
}

// claimTimes is the timing of the probe claims.
type claimTimes struct {
	Summary
	first time.Duration
}

// timeClaims times reps claims of 500 rows through outbox.Store on a probe
// relay id, releasing each claim at once so the backlog is unchanged, and
// returns EXPLAIN (ANALYZE, BUFFERS) of each statement one claim runs
// (recorded with a query tracer, explained in a rolled-back transaction).
func timeClaims(ctx context.Context, url string, reps int) (claimTimes, []string, error) {
	const probe = "bench-claim-probe"
	tr := &queryRecorder{}
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return claimTimes{}, nil, err
	}
	pc.MaxConns = 2
	pc.ConnConfig.Tracer = tr
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return claimTimes{}, nil, err
	}
	defer pool.Close()
	store := outbox.New(pool)
	var ds []time.Duration
	for i := range reps {
		tr.start(i == 0)
		t0 := time.Now()
		evs, err := store.Claim(ctx, probe, 500, time.Minute)
		d := time.Since(t0)
		tr.stop()
		if err != nil {
			return claimTimes{}, nil, err
		}
		if len(evs) == 0 {
			return claimTimes{}, nil, fmt.Errorf("the probe claim found nothing to claim")
		}
		ds = append(ds, d)
		held := make([]outbox.Held, len(evs))
		for j, e := range evs {
			held[j] = outbox.Held{ID: e.ID, Attempt: e.Attempt}
		}
		if _, err := store.Release(ctx, probe, held); err != nil {
			return claimTimes{}, nil, err
		}
	}
	var plans []string
	for _, q := range tr.queries {
		p, err := explain(ctx, pool, q.sql, q.args)
		if err != nil {
			p = "EXPLAIN failed: " + err.Error()
		}
		plans = append(plans, p)
	}
	return claimTimes{Summary: Summarize(ds), first: ds[0]}, plans, nil
}

// explain runs EXPLAIN (ANALYZE, BUFFERS) of q with args in a transaction
// it rolls back, so the statement's effects are undone.
func explain(ctx context.Context, pool *pgxpool.Pool, q string, args []any) (string, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return "", err
	}
	defer tx.Rollback(context.Background())
	rows, err := tx.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS)\n"+q, args...)
	if err != nil {
		return "", err
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "", err
	}
	return strings.Join(lines, "\n"), nil
}

// queryRecorder is a pgx tracer that keeps the SQL and arguments of every
// query started while armed.
type queryRecorder struct {
	mu      sync.Mutex
	armed   bool
	queries []recordedQuery
}

type recordedQuery struct {
	sql  string
	args []any
}

func (q *queryRecorder) start(arm bool) { q.mu.Lock(); q.armed = arm; q.mu.Unlock() }
func (q *queryRecorder) stop()          { q.start(false) }

func (q *queryRecorder) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	q.mu.Lock()
	if q.armed {
		q.queries = append(q.queries, recordedQuery{sql: d.SQL, args: d.Args})
	}
	q.mu.Unlock()
	return ctx
}

func (q *queryRecorder) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// countLabel prints 10000 as 10k and 1000000 as 1M.
func countLabel(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1_000 && n%1_000 == 0:
		return fmt.Sprintf("%dk", n/1_000)
	}
	return fmt.Sprint(n)
}
