package relayrun_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paragon-outbox/outbox-relay/internal/config"
	"github.com/paragon-outbox/outbox-relay/internal/dbsqlc"
	"github.com/paragon-outbox/outbox-relay/internal/outbox"
	"github.com/paragon-outbox/outbox-relay/internal/relayrun"
	"github.com/paragon-outbox/outbox-relay/internal/testdb"
)

// TestCachedGenericPlansNeverScanTheOutbox: pgx prepares the relay's
// statements and PostgreSQL may keep a generic plan for good. Built on an
// empty outbox (a fresh install) that plan would read the outbox
// sequentially, the cheapest way then, and go on doing so as it grows. The
// relay's pool (sqlfiles.SetSeqScanOff) makes the cached plan use the
// indexes: after the outbox has grown to 20,000 rows with no ANALYZE or
// VACUUM in between (nothing invalidates the plans), the claim's plan
// cached on the relay's connection (EXPLAIN EXECUTE of pgx's prepared
// statement) has no sequential scan of the outbox.
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
	claimAndRecord(100)

	// The plan the relay's connection has cached for the claim, as
	// PostgreSQL would run it now: EXPLAIN EXECUTE of pgx's prepared
	// statement, on that connection.
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	var name string
	var generic int64
	if err := conn.QueryRow(ctx, `SELECT name, generic_plans FROM pg_prepared_statements WHERE statement = $1`, dbsqlc.Claim).Scan(&name, &generic); err != nil {
		t.Fatalf("the claim is not prepared on the relay's connection: %v", err)
	}
	if generic == 0 {
		t.Fatalf("the claim ran no generic plan (generic_plans = 0): nothing tested")
	}
	var raw []byte
	// Arguments in dbsqlc.ClaimParams' $n order: relay, lease ms, low-water
	// mark, rows, user cursor, users, per user.
	if err := conn.QueryRow(ctx, fmt.Sprintf(`EXPLAIN (FORMAT JSON) EXECUTE %s('relay', 60000, NULL, 500, '', 100, 10)`, pgx.Identifier{name}.Sanitize())).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	var plan []struct {
		Plan planNode `json:"Plan"`
	}
	if err := json.Unmarshal(raw, &plan); err != nil || len(plan) == 0 {
		t.Fatalf("EXPLAIN output: %v %s", err, raw)
	}
	if n := seqScans(plan[0].Plan, "outbox"); n > 0 {
		t.Fatalf("the relay's cached claim plan reads the outbox sequentially (%d Seq Scan nodes) at 20,000 rows:\n%s", n, raw)
	}
}

// planNode is a node of EXPLAIN (FORMAT JSON) output.
type planNode struct {
	NodeType string     `json:"Node Type"`
	Relation string     `json:"Relation Name"`
	Plans    []planNode `json:"Plans"`
}

// seqScans counts the Seq Scan nodes on relation under n.
func seqScans(n planNode, relation string) int {
	c := 0
	if n.NodeType == "Seq Scan" && n.Relation == relation {
		c++
	}
	for _, k := range n.Plans {
		c += seqScans(k, relation)
	}
	return c
}
