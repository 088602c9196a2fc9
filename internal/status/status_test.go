package status_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/dbsqlc"
	"github.com/paragon-outbox/outbox-relay/internal/operator/operatortest"
	"github.com/paragon-outbox/outbox-relay/internal/status"
	"github.com/paragon-outbox/outbox-relay/internal/testdb"
)

func texts(t *testing.T, rep *status.Report) (text string, js map[string]any) {
	t.Helper()
	var tb, jb bytes.Buffer
	if err := rep.WriteText(&tb); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteJSON(&jb); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(jb.Bytes(), &js); err != nil {
		t.Fatalf("status -json is not JSON: %v\n%s", err, jb.String())
	}
	return tb.String(), js
}

// line returns the text line whose first field is label, or fails.
func line(t *testing.T, text, label string) string {
	t.Helper()
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), label+"  ") {
			return strings.Join(strings.Fields(strings.TrimPrefix(strings.TrimSpace(l), label)), " ")
		}
	}
	t.Fatalf("no line %q in\n%s", label, text)
	return ""
}

func TestCountsEveryStatus(t *testing.T) {
	db := testdb.New(t)
	add := func(st string, n int) {
		for range n {
			operatortest.Add(t, db.Pool, operatortest.Event{User: "usr_" + st, Status: st, Attempts: 1, LastError: "boom", HTTPStatus: 500})
		}
	}
	add("pending", 3)
	add("in_flight", 2)
	add("delivered", 5)
	add("dead", 1)
	rep, err := status.Collect(context.Background(), db.Pool, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"pending": 3, "in_flight": 2, "delivered": 5, "dead": 1}
	for k, v := range want {
		if rep.Counts[k] != v {
			t.Errorf("counts[%s] = %d, want %d (all: %v)", k, rep.Counts[k], v, rep.Counts)
		}
	}
	if rep.DeliveredEstimated {
		t.Error("11 rows: delivered count must be exact")
	}
	if len(rep.TopBacklog) != 3 || rep.TopBacklog[0].UserID != "usr_pending" || rep.TopBacklog[0].Pending != 3 ||
		rep.TopBacklog[1].UserID != "usr_in_flight" || rep.TopBacklog[1].InFlight != 2 {
		t.Errorf("top backlog = %+v", rep.TopBacklog)
	}
}

// TestCountsReadOnlyPartialIndexes: the statements behind the counts and the
// backlog read the outbox only through the partial indexes of pending,
// in-flight and dead rows, never a whole-table scan and never delivered rows
// (a GROUP BY status over the table did, taking seconds at millions of rows).
func TestCountsReadOnlyPartialIndexes(t *testing.T) {
	db := testdb.New(t)
	for range 20 {
		operatortest.Add(t, db.Pool, operatortest.Event{User: "usr_a", Status: "delivered", Attempts: 1})
	}
	operatortest.Add(t, db.Pool, operatortest.Event{User: "usr_a", Status: "pending"})
	ctx := context.Background()
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	// With sequential scans priced out, a statement that can use a partial
	// index does; one that cannot (no status predicate) still shows a scan
	// of the table or of an index over every row.
	if _, err := conn.Exec(ctx, "SET enable_seqscan = off"); err != nil {
		t.Fatal(err)
	}
	// The partial indexes whose predicate keeps only undelivered statuses.
	allowed := map[string]bool{}
	rows, err := conn.Query(ctx, `
		SELECT c.relname, pg_get_expr(i.indpred, i.indrelid)
		FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid
		WHERE i.indrelid = 'outbox'::regclass AND i.indpred IS NOT NULL`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name, pred string
		if err := rows.Scan(&name, &pred); err != nil {
			t.Fatal(err)
		}
		// A predicate on status that admits no delivered row.
		if strings.Contains(pred, "status") && !strings.Contains(pred, "delivered") {
			allowed[name] = true
		}
	}
	if rows.Err() != nil || len(allowed) < 3 {
		t.Fatalf("partial indexes found: %v (%v)", allowed, rows.Err())
	}
	for name, q := range map[string]string{"status_counts": dbsqlc.StatusCounts, "status_top_backlog": dbsqlc.StatusTopBacklog} {
		args := []any{}
		if name == "status_top_backlog" {
			args = append(args, 10)
		}
		var plan []map[string]any
		if err := conn.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+q, args...).Scan(&plan); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var walk func(n map[string]any)
		scans := 0
		walk = func(n map[string]any) {
			if n["Relation Name"] == "outbox" {
				scans++
				idx, _ := n["Index Name"].(string)
				if n["Node Type"] == "Bitmap Heap Scan" {
					// The index is named by the Bitmap Index Scan below.
					children, _ := n["Plans"].([]any)
					if len(children) == 1 {
						idx, _ = children[0].(map[string]any)["Index Name"].(string)
					}
				}
				if !allowed[idx] {
					t.Errorf("%s: %s on outbox (index %q): not a partial index of undelivered rows", name, n["Node Type"], idx)
				}
			}
			children, _ := n["Plans"].([]any)
			for _, c := range children {
				walk(c.(map[string]any))
			}
		}
		walk(plan[0]["Plan"].(map[string]any))
		if scans == 0 {
			t.Errorf("%s: the plan reads no outbox index at all", name)
		}
	}
}

// TestDeliveredEstimatedPastThreshold: past ExactCountUpTo outbox rows (by
// pg_class.reltuples), delivered is estimated and both outputs say so.
func TestDeliveredEstimatedPastThreshold(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	for range 30 {
		operatortest.Add(t, db.Pool, operatortest.Event{User: "usr_a", Status: "delivered", Attempts: 1})
	}
	for range 2 {
		operatortest.Add(t, db.Pool, operatortest.Event{User: "usr_b", Status: "pending"})
	}
	if _, err := db.Pool.Exec(ctx, "ANALYZE outbox"); err != nil {
		t.Fatal(err)
	}

	exact, err := status.CollectWith(ctx, db.Pool, status.Options{ExactCountUpTo: 100})
	if err != nil {
		t.Fatal(err)
	}
	text, js := texts(t, exact)
	if exact.DeliveredEstimated || exact.Counts["delivered"] != 30 || js["delivered_estimated"] != false {
		t.Errorf("32 rows, threshold 100: estimated=%v delivered=%d json=%v", exact.DeliveredEstimated, exact.Counts["delivered"], js["delivered_estimated"])
	}
	if got := line(t, text, "delivered"); got != "30" {
		t.Errorf("exact delivered line = %q, want 30", got)
	}

	est, err := status.CollectWith(ctx, db.Pool, status.Options{ExactCountUpTo: 10})
	if err != nil {
		t.Fatal(err)
	}
	text, js = texts(t, est)
	// ANALYZE of a table this small reads every row, so reltuples is 32.
	if !est.DeliveredEstimated || est.Counts["delivered"] != 30 || js["delivered_estimated"] != true {
		t.Errorf("32 rows, threshold 10: estimated=%v delivered=%d json=%v", est.DeliveredEstimated, est.Counts["delivered"], js["delivered_estimated"])
	}
	if got := line(t, text, "delivered"); !strings.HasPrefix(got, "about 30 (estimated") {
		t.Errorf("estimated delivered line = %q, want it to say about 30, estimated", got)
	}
	if est.Counts["pending"] != 2 {
		t.Errorf("pending must stay exact: %d", est.Counts["pending"])
	}

	// A table never analyzed has no estimate (reltuples -1): counted exactly.
	fresh := testdb.New(t)
	operatortest.Add(t, fresh.Pool, operatortest.Event{User: "usr_a", Status: "delivered", Attempts: 1})
	rep, err := status.CollectWith(ctx, fresh.Pool, status.Options{ExactCountUpTo: 10})
	if err != nil {
		t.Fatal(err)
	}
	if rep.DeliveredEstimated || rep.Counts["delivered"] != 1 {
		t.Errorf("never analyzed: estimated=%v delivered=%d, want exact 1", rep.DeliveredEstimated, rep.Counts["delivered"])
	}
}

// TestDeadIsNotWaiting: a dead event is not an undelivered event waiting
// for the relay. With only dead events the oldest pending is "none", not
// 0s, and the dead one's age has its own line and JSON field.
func TestDeadIsNotWaiting(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	operatortest.Add(t, db.Pool, operatortest.Event{User: "usr_a", Status: "dead", Attempts: 1, LastError: "boom", HTTPStatus: 500, CreatedAgo: 2 * time.Hour})
	rep, err := status.Collect(ctx, db.Pool, 5)
	if err != nil {
		t.Fatal(err)
	}
	text, js := texts(t, rep)
	if got := line(t, text, "oldest pending"); got != "none waiting" {
		t.Errorf("oldest pending line = %q, want none waiting\n%s", got, text)
	}
	if got := line(t, text, "oldest dead"); !strings.HasPrefix(got, "2h0m") {
		t.Errorf("oldest dead line = %q, want 2h0m...\n%s", got, text)
	}
	if strings.Contains(text, "undelivered") {
		t.Errorf("text still says undelivered:\n%s", text)
	}
	if js["oldest_pending_age_seconds"] != float64(0) {
		t.Errorf("json oldest_pending_age_seconds = %v, want 0", js["oldest_pending_age_seconds"])
	}
	if d, _ := js["oldest_dead_age_seconds"].(float64); d < 7200 || d > 7200+600 {
		t.Errorf("json oldest_dead_age_seconds = %v, want about 7200", js["oldest_dead_age_seconds"])
	}

	operatortest.Add(t, db.Pool, operatortest.Event{User: "usr_b", Status: "pending", CreatedAgo: 10 * time.Minute})
	rep, err = status.Collect(ctx, db.Pool, 5)
	if err != nil {
		t.Fatal(err)
	}
	text, _ = texts(t, rep)
	if got := line(t, text, "oldest pending"); !strings.HasPrefix(got, "10m") {
		t.Errorf("oldest pending line = %q, want 10m...\n%s", got, text)
	}
	if rep.OldestDeadAgeSeconds < 7200 {
		t.Errorf("oldest dead = %v s, want >= 7200", rep.OldestDeadAgeSeconds)
	}
	// No dead event, no dead line.
	empty := testdb.New(t)
	rep, err = status.Collect(ctx, empty.Pool, 5)
	if err != nil {
		t.Fatal(err)
	}
	text, _ = texts(t, rep)
	if strings.Contains(text, "oldest dead") {
		t.Errorf("no dead events, yet:\n%s", text)
	}
}

func TestEmptyListsAreJSONArrays(t *testing.T) {
	db := testdb.New(t)
	rep, err := status.Collect(context.Background(), db.Pool, 5)
	if err != nil {
		t.Fatal(err)
	}
	_, js := texts(t, rep)
	for _, k := range []string{"top_backlog", "top_errors", "recent_errors"} {
		if _, ok := js[k].([]any); !ok {
			t.Errorf("%s = %v, want []", k, js[k])
		}
	}
}
