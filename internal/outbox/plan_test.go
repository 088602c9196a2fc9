package outbox_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paragon-outbox/outbox-relay/internal/dbsqlc"
	"github.com/paragon-outbox/outbox-relay/internal/testdb"
)

// planNode is one node of EXPLAIN (FORMAT JSON) output.
type planNode struct {
	NodeType      string     `json:"Node Type"`
	Relation      string     `json:"Relation Name"`
	Index         string     `json:"Index Name"`
	Loops         float64    `json:"Actual Loops"`
	Rows          float64    `json:"Actual Rows"`
	RemovedByJoin float64    `json:"Rows Removed by Join Filter"`
	Plans         []planNode `json:"Plans"`
}

// planProblems lists the nodes of plan that do work growing faster than the
// batch: rows removed by a join filter (over all loops: EXPLAIN prints the
// per-loop average) above batch, or a sequential scan of outbox.
func planProblems(n planNode, batch int, path string) []string {
	var out []string
	here := path + "/" + n.NodeType
	if n.Relation != "" {
		here += "(" + n.Relation + ")"
	}
	if removed := n.RemovedByJoin * max(n.Loops, 1); removed > float64(batch) {
		out = append(out, fmt.Sprintf("%s removes %.0f rows by join filter (batch %d)", here, removed, batch))
	}
	if n.NodeType == "Seq Scan" && n.Relation == "outbox" {
		out = append(out, fmt.Sprintf("%s is a sequential scan of outbox", here))
	}
	for _, c := range n.Plans {
		out = append(out, planProblems(c, batch, here)...)
	}
	return out
}

func TestPlanProblemsFindsJoinFilterAndSeqScan(t *testing.T) {
	// The checker itself: the record_results plan of issue 9 (nested loop,
	// 249,500 rows removed by join filter for 500 results) and a seq scan.
	bad := planNode{NodeType: "Update", Plans: []planNode{{NodeType: "Nested Loop", Loops: 1, RemovedByJoin: 249500,
		Plans: []planNode{{NodeType: "Function Scan"}, {NodeType: "Seq Scan", Relation: "outbox", Loops: 1}}}}}
	got := planProblems(bad, 500, "")
	if len(got) != 2 || !strings.Contains(got[0], "249500 rows removed") && !strings.Contains(got[0], "removes 249500") || !strings.Contains(got[1], "sequential scan of outbox") {
		t.Fatalf("planProblems = %q, want the join filter and the seq scan", got)
	}
	// Per-loop averages are multiplied back by the loops.
	if got := planProblems(planNode{NodeType: "Nested Loop", Loops: 500, RemovedByJoin: 2}, 500, ""); len(got) != 1 {
		t.Fatalf("2 rows removed in each of 500 loops: planProblems = %q, want one problem", got)
	}
	if got := planProblems(planNode{NodeType: "Index Scan", Relation: "outbox", Loops: 1, RemovedByJoin: 0}, 1, ""); len(got) != 0 {
		t.Fatalf("clean plan: planProblems = %q", got)
	}
}

// TestHotStatementPlansScaleWithTheBatch runs EXPLAIN (ANALYZE, FORMAT JSON)
// of every hot statement (claim, record_results, release, extend_leases,
// rescue_expired) at batch sizes 1, 50 and 500 against an outbox holding
// 100,000 delivered rows (plus the batch's own rows), with custom and with
// generic plans (the relay's pgx connections prepare statements, and
// PostgreSQL switches a prepared statement to a generic plan after five
// runs), and fails on any node whose work grows with the square of the
// batch or with the table: rows removed by a join filter above the batch
// size, or a sequential scan of outbox. Each EXPLAIN runs in a transaction
// that is rolled back.
func TestHotStatementPlansScaleWithTheBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 100,000 rows")
	}
	db := testdb.New(t)
	if _, err := db.Pool.Exec(ctx, `
		INSERT INTO outbox (event_name, user_id, lead_id, payload, status, attempts, delivered_at, created_at)
		SELECT 'Lead Created', 'usr_' || (g % 200), g, jsonb_build_object('leadId', g, 'lastName', 'L' || g), 'delivered', 1, now(), now() - interval '1 day'
		FROM generate_series(1, 100000) g`); err != nil {
		t.Fatal(err)
	}
	// 1,000 pending rows of 200 users: every batch size finds due rows.
	if _, err := db.Pool.Exec(ctx, `INSERT INTO leads (owner_id, last_name) SELECT 'usr_' || (g % 200), 'P' || g FROM generate_series(1, 1000) g`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `VACUUM ANALYZE outbox, outbox_attempts`); err != nil {
		t.Fatal(err)
	}

	const relay = "plan-test"
	// Arguments in the order sqlc numbered each statement's parameters (the
	// order of the Queries method's arguments in internal/dbsqlc).
	claimSQL := dbsqlc.Claim
	claim := func(tx pgx.Tx, n int) (ids []int64, attempts []int32) {
		t.Helper()
		rows, err := tx.Query(ctx, claimSQL, claimArgs(dbsqlc.ClaimParams{RelayID: relay, LeaseMs: 60_000, MaxUsers: 100, PerUser: 10, MaxRows: int32(n)})...)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, vals[0].(int64))
			attempts = append(attempts, vals[5].(int32))
		}
		if rows.Err() != nil {
			t.Fatal(rows.Err())
		}
		if len(ids) != n {
			t.Fatalf("claimed %d rows, want %d", len(ids), n)
		}
		return ids, attempts
	}
	type statement struct {
		name string
		sql  string
		args func(tx pgx.Tx, n int) []any // claims its rows in tx first if needed
	}
	stmts := []statement{
		{"claim", dbsqlc.Claim, func(tx pgx.Tx, n int) []any {
			return claimArgs(dbsqlc.ClaimParams{RelayID: relay, LeaseMs: 60_000, MaxUsers: 100, PerUser: 10, MaxRows: int32(n)})
		}},
		{"record_results", dbsqlc.RecordResults, func(tx pgx.Tx, n int) []any {
			ids, att := claim(tx, n)
			outcomes, statuses, errs := make([]string, n), make([]int32, n), make([]string, n)
			started, finished, delays, uncounted := make([]time.Time, n), make([]time.Time, n), make([]int64, n), make([]bool, n)
			for i := range n {
				outcomes[i], statuses[i], started[i], finished[i] = "delivered", 201, time.Now(), time.Now()
				if i%10 == 0 { // a few retries: both branches of the statement
					outcomes[i], delays[i] = "retry", 1000
				}
			}
			return []any{ids, att, outcomes, statuses, errs, started, finished, delays, uncounted, relay}
		}},
		{"release", dbsqlc.Release, func(tx pgx.Tx, n int) []any {
			ids, att := claim(tx, n)
			return []any{relay, ids, att}
		}},
		{"extend_leases", dbsqlc.ExtendLeases, func(tx pgx.Tx, n int) []any {
			ids, _ := claim(tx, n)
			return []any{int64(60_000), ids, relay}
		}},
		{"rescue_expired", dbsqlc.RescueExpired, func(tx pgx.Tx, n int) []any {
			ids, _ := claim(tx, n)
			if _, err := tx.Exec(ctx, `UPDATE outbox SET lease_expires_at = now() - interval '1 second' WHERE id = ANY($1)`, ids); err != nil {
				t.Fatal(err)
			}
			return []any{n, 5}
		}},
	}
	for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
		for _, st := range stmts {
			for _, batch := range []int{1, 50, 500} {
				t.Run(fmt.Sprintf("%s/%s/%d", st.name, mode, batch), func(t *testing.T) {
					tx, err := db.Pool.Begin(ctx)
					if err != nil {
						t.Fatal(err)
					}
					defer tx.Rollback(ctx)
					args := st.args(tx, batch)
					if _, err := tx.Exec(ctx, "SET LOCAL plan_cache_mode = "+mode); err != nil {
						t.Fatal(err)
					}
					var out []byte
					if err := tx.QueryRow(ctx, "EXPLAIN (ANALYZE, FORMAT JSON) "+st.sql, args...).Scan(&out); err != nil {
						t.Fatal(err)
					}
					var plans []struct {
						Plan planNode `json:"Plan"`
					}
					if err := json.Unmarshal(out, &plans); err != nil || len(plans) != 1 {
						t.Fatalf("EXPLAIN output: %v\n%s", err, out)
					}
					if p := planProblems(plans[0].Plan, batch, ""); len(p) > 0 {
						t.Errorf("%s at batch %d (%s) does work that grows faster than the batch:\n  %s\nplan: %s",
							st.name, batch, mode, strings.Join(p, "\n  "), out)
					}
				})
			}
		}
	}
}

// claimArgs lists p's fields in the order sqlc numbered the claim's
// parameters ($1, $2, ...: the order internal/dbsqlc's Claim passes them),
// for running dbsqlc.Claim under EXPLAIN.
func claimArgs(p dbsqlc.ClaimParams) []any {
	return []any{p.RelayID, p.LeaseMs, p.LowWater, p.MaxRows, p.UserCursor, p.MaxUsers, p.PerUser}
}
