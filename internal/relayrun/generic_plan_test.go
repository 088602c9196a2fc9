package relayrun_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/config"
	"github.com/paragon-outbox/outbox-relay/internal/outbox"
	"github.com/paragon-outbox/outbox-relay/internal/relayrun"
	"github.com/paragon-outbox/outbox-relay/internal/testdb"
)

// outboxScans reads the sequential and index scans counted on outbox.
func outboxScans(t *testing.T, pool *pgxpool.Pool) (seq, idx int64) {
	t.Helper()
	if err := pool.QueryRow(context.Background(),
		`SELECT seq_scan, coalesce(idx_scan, 0) FROM pg_stat_user_tables WHERE relname = 'outbox'`).Scan(&seq, &idx); err != nil {
		t.Fatal(err)
	}
	return seq, idx
}

// TestCachedGenericPlansNeverScanTheOutbox: pgx prepares the relay's
// statements and PostgreSQL may keep a generic plan for good. Built on an
// empty outbox (a fresh install) that plan would read the outbox
// sequentially, the cheapest way then, and go on doing so as it grows. The
// relay's pool (sqlfiles.SetSeqScanOff) makes the cached plan use the
// indexes: after the outbox has grown to 20,000 rows with no ANALYZE or
// VACUUM in between (nothing invalidates the plans), a claim and a record
// through the same pool scan the outbox by index only.
// plan_cache_mode=force_generic_plan makes PostgreSQL cache the generic
// plan at the first run instead of after five.
func TestCachedGenericPlansNeverScanTheOutbox(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `VACUUM ANALYZE outbox`); err != nil { // statistics of an empty outbox
		t.Fatal(err)
	}
	cfg := config.Defaults()
	cfg.DatabaseURL = db.URL + "&options=-c%20plan_cache_mode%3Dforce_generic_plan"
	cfg.StartupTimeout = time.Minute
	pool, err := relayrun.OpenPoolWaiting(ctx, cfg, 1, nil) // one connection: every statement reuses its cached plan
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	store := outbox.New(pool)
	store.RecheckInterval = -1 // no low-water mark: every claim reads the pending indexes from the front
	claimAndRecord := func(want int) {
		t.Helper()
		evs, err := store.Claim(ctx, "relay", 500, time.Minute)
		if err != nil || len(evs) != want {
			t.Fatalf("claim: %d rows, %v; want %d", len(evs), err, want)
		}
		res := make([]outbox.Result, len(evs))
		for i, e := range evs {
			res[i] = outbox.Result{ID: e.ID, Attempt: e.Attempt, Outcome: outbox.OutcomeDelivered, HTTPStatus: 200, Started: time.Now(), Finished: time.Now()}
		}
		if _, err := store.Record(ctx, "relay", res); err != nil {
			t.Fatal(err)
		}
	}
	// Plans cached while the outbox is (nearly) empty.
	if _, err := db.Pool.Exec(ctx, `INSERT INTO leads (owner_id, last_name) VALUES ('usr_a', 'A')`); err != nil {
		t.Fatal(err)
	}
	claimAndRecord(1)
	// The outbox grows: 20,000 delivered rows and 100 pending, no ANALYZE or VACUUM.
	if _, err := db.Pool.Exec(ctx, `INSERT INTO leads (owner_id, last_name) SELECT 'usr_' || (g % 200), 'L' FROM generate_series(1, 20000) g`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `UPDATE outbox SET status = 'delivered', delivered_at = now(), attempts = 1 WHERE status = 'pending'`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO leads (owner_id, last_name) SELECT 'usr_' || (g % 200), 'L' FROM generate_series(1, 100) g`); err != nil {
		t.Fatal(err)
	}
	seq0, idx0 := outboxScans(t, db.Pool)
	claimAndRecord(100)
	// Statistics reach the shared counters when the relay's backend goes
	// idle; the claim's index scans show they have.
	deadline := time.Now().Add(time.Minute)
	seq, idx := outboxScans(t, db.Pool)
	for idx == idx0 {
		if time.Now().After(deadline) {
			t.Fatal("the claim's scans never showed in pg_stat_user_tables")
		}
		time.Sleep(50 * time.Millisecond)
		seq, idx = outboxScans(t, db.Pool)
	}
	if seq != seq0 {
		t.Fatalf("the relay's cached plans read the outbox sequentially %d times for one claim and record of 100 rows at 20,000 rows", seq-seq0)
	}
}
