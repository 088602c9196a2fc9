package console

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/testdb"
)

// TestIndexCost measures what the console's indexes cost the write path,
// side by side in one run (docs/CONSOLE.md): lead inserts (the trigger
// writes the outbox row)
// (outbox_user_id, outbox_event_name: one more B-tree entry each;
// outbox_created_at_brin: a summary update at most) and attempt records
// (outbox_attempts_failed_started_at holds only failed
// attempts: a successful record pays the predicate check). Each round runs
// with and without the index, alternating; the best of the rounds is kept.
// Run: CONSOLE_INDEX_COST=1 go test -run TestIndexCost -v ./internal/console/
func TestIndexCost(t *testing.T) {
	if os.Getenv("CONSOLE_INDEX_COST") == "" {
		t.Skip("a measurement, not a check: set CONSOLE_INDEX_COST=1 to run it")
	}
	db := testdb.New(t)
	ctx := context.Background()
	exec := func(q string) time.Duration {
		start := time.Now()
		if _, err := db.Pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return time.Since(start)
	}
	const leads = 20000
	insertLeads := `INSERT INTO leads (owner_id, first_name, email) SELECT 'usr_' || (i % 500), 'Ada', 'ada@example.com' FROM generate_series(1, 20000) AS i`
	recordOK := `INSERT INTO outbox_attempts (outbox_id, attempt, relay_id, started_at, finished_at, http_status)
	             SELECT id, 1000 + (SELECT coalesce(max(attempt), 0) FROM outbox_attempts WHERE outbox_id = o.id), 'r', now(), now(), 200 FROM outbox o LIMIT 20000`
	recordFail := `INSERT INTO outbox_attempts (outbox_id, attempt, relay_id, started_at, finished_at, http_status, error)
	             SELECT id, 1000 + (SELECT coalesce(max(attempt), 0) FROM outbox_attempts WHERE outbox_id = o.id), 'r', now(), now(), 500, 'paragon answered 500' FROM outbox o LIMIT 20000`
	best := func(d, cur time.Duration) time.Duration {
		if cur == 0 || d < cur {
			return d
		}
		return cur
	}
	var with, without, okWith, okWithout, failWith, failWithout time.Duration
	exec(insertLeads) // warm up
	// The tables grow as rounds go, so the order alternates: odd rounds
	// measure with the indexes first.
	for round := 0; round < 6; round++ {
		for i := 0; i < 2; i++ {
			if (i == 0) == (round%2 == 0) {
				exec(`DROP INDEX IF EXISTS outbox_user_id`)
				exec(`DROP INDEX IF EXISTS outbox_event_name`)
				exec(`DROP INDEX IF EXISTS outbox_created_at_brin`)
				exec(`DROP INDEX IF EXISTS outbox_attempts_failed_started_at`)
				without = best(exec(insertLeads), without)
				okWithout = best(exec(recordOK), okWithout)
				failWithout = best(exec(recordFail), failWithout)
			} else {
				exec(`CREATE INDEX IF NOT EXISTS outbox_user_id ON outbox (user_id)`)
				exec(`CREATE INDEX IF NOT EXISTS outbox_event_name ON outbox (event_name)`)
				exec(`CREATE INDEX IF NOT EXISTS outbox_created_at_brin ON outbox USING brin (created_at)`)
				exec(`CREATE INDEX IF NOT EXISTS outbox_attempts_failed_started_at ON outbox_attempts (started_at) WHERE error IS NOT NULL`)
				with = best(exec(insertLeads), with)
				okWith = best(exec(recordOK), okWith)
				failWith = best(exec(recordFail), failWith)
			}
		}
	}
	// Size per row: what each index adds to every insert, independent of load.
	exec(`CREATE INDEX IF NOT EXISTS outbox_user_id ON outbox (user_id)`)
	exec(`CREATE INDEX IF NOT EXISTS outbox_event_name ON outbox (event_name)`)
	exec(`CREATE INDEX IF NOT EXISTS outbox_created_at_brin ON outbox USING brin (created_at)`)
	var rows int64
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	for _, ix := range []string{"outbox_pkey", "outbox_user_id", "outbox_event_name", "outbox_created_at_brin"} {
		var size int64
		if err := db.Pool.QueryRow(ctx, `SELECT pg_relation_size($1::regclass)`, ix).Scan(&size); err != nil {
			t.Fatal(err)
		}
		t.Logf("%-24s %6.1f bytes per outbox row (%d rows)", ix, float64(size)/float64(rows), rows)
	}
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / leads }
	t.Logf("lead insert (trigger writes outbox), %d per statement, best of 6:", leads)
	t.Logf("  without the three console indexes of migration 00012 %.1f µs/lead, with %.1f µs/lead: x%.3f", per(without), per(with), float64(with)/float64(without))
	t.Logf("successful attempt record: without the failed-attempts index %.1f µs, with %.1f µs: x%.3f", per(okWithout), per(okWith), float64(okWith)/float64(okWithout))
	t.Logf("failed attempt record:     without the failed-attempts index %.1f µs, with %.1f µs: x%.3f", per(failWithout), per(failWith), float64(failWith)/float64(failWithout))
}
