package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/dbsqlc"
	"github.com/paragon-outbox/outbox-relay/internal/testdb"
)

// bigOutbox fills a database with many delivered events (and their
// attempts), a drain's backlog of pending and in-flight ones, a few dead,
// waiting and skipped ones, then ANALYZEs, so that the
// planner sees what production sees: delivered rows are nearly all of it.
func bigOutbox(t *testing.T, delivered int) *pgxpool.Pool {
	t.Helper()
	db := testdb.New(t)
	ctx := context.Background()
	for _, q := range []string{
		fmt.Sprintf(`INSERT INTO outbox (event_name, user_id, lead_id, ordering_key, payload, status, attempts, created_at, delivered_at)
		 SELECT CASE WHEN i %% 2000 = 0 THEN 'Lead Deleted' WHEN i %% 50 = 0 THEN 'Lead Updated' ELSE 'Lead Created' END, 'usr_' || (i %% 2000), i, 'lead:' || i, '{"leadId": 1}', 'delivered', 1,
		        now() - (%[1]d - i) * interval '1 second', now() - (%[1]d - i) * interval '1 second' + interval '80 ms'
		 FROM generate_series(1, %[1]d) AS i`, delivered),
		`INSERT INTO outbox_attempts (outbox_id, attempt, relay_id, started_at, finished_at, http_status)
		 SELECT id, 1, 'relay-a', delivered_at - interval '20 ms', delivered_at, 200 FROM outbox`,
		`INSERT INTO outbox (event_name, user_id, lead_id, payload, status, attempts, created_at, last_error, last_http_status)
		 SELECT 'Lead Created', 'usr_' || (i % 7), 10000000 + i, '{"leadId": 1}', 'dead', 1, now() - i * interval '1 minute',
		        'rejected, not retried: paragon answered 422', 422
		 FROM generate_series(1, 300) AS i`,
		`INSERT INTO outbox (event_name, user_id, lead_id, payload, status, created_at)
		 SELECT 'Lead Created', 'usr_' || (i % 9), 20000000 + i, '{"leadId": 1}', 'pending', now() - i * interval '1 second'
		 FROM generate_series(1, 500) AS i`,
		// A relay's drain in progress: a backlog of Lead Created events
		// (each under its own key), some claimed. Unsettled events are not in
		// the console's user and event-name indexes (migration 00017): the
		// events list finds them through the relay's partial indexes.
		`INSERT INTO outbox (event_name, user_id, lead_id, ordering_key, payload, status, created_at)
		 SELECT 'Lead Created', 'usr_' || (i % 200), 50000000 + i, 'lead:' || (50000000 + i), '{"leadId": 1}', 'pending', now()
		 FROM generate_series(1, 5000) AS i`,
		`INSERT INTO outbox (event_name, user_id, lead_id, ordering_key, payload, status, attempts, created_at, lease_owner, lease_expires_at)
		 SELECT 'Lead Created', 'usr_' || (i % 200), 60000000 + i, 'lead:' || (60000000 + i), '{"leadId": 1}', 'in_flight', 1, now(),
		        'relay-a', now() + interval '30 seconds'
		 FROM generate_series(1, 200) AS i`,
		// Keys blocked by a dead head, with events waiting behind it.
		`UPDATE outbox SET ordering_key = 'acct:' || (lead_id % 100) WHERE status = 'dead'`,
		`INSERT INTO outbox (event_name, user_id, lead_id, ordering_key, payload, status, created_at)
		 SELECT 'Lead Updated', 'usr_' || (i % 7), 30000000 + i, 'acct:' || (i % 100), '{"leadId": 1}', 'waiting', now() - i * interval '1 second'
		 FROM generate_series(1, 400) AS i`,
		`INSERT INTO outbox_attempts (outbox_id, attempt, relay_id, started_at, finished_at, http_status, error)
		 SELECT id, 1, 'relay-a', created_at + interval '1 second', created_at + interval '2 seconds', 422, last_error
		 FROM outbox WHERE status = 'dead'`,
		// Dead events an operator released from their key (outbox-relay skip).
		`INSERT INTO outbox (event_name, user_id, lead_id, ordering_key, payload, status, attempts, created_at, last_error, last_http_status)
		 SELECT 'Lead Updated', 'usr_' || (i % 7), 40000000 + i, 'acct:' || (i % 100), '{"leadId": 1}', 'skipped', 1, now() - i * interval '1 minute',
		        'rejected, not retried: paragon answered 422', 422
		 FROM generate_series(1, 50) AS i`,
		`ANALYZE outbox`, `ANALYZE outbox_attempts`, `ANALYZE outbox_redrives`,
	} {
		if _, err := db.Pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return db.Pool
}

// seqScans returns the relations of outbox and outbox_attempts that the plan
// of sql with args reads by sequential scan; args are as the store sends
// them (pgx.QueryExecModeExec first: an unnamed statement, planned with the
// parameter values).
func seqScans(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) ([]string, string) {
	t.Helper()
	var plan []byte
	err := pool.QueryRow(context.Background(), "EXPLAIN (FORMAT JSON) "+sql, args...).Scan(&plan)
	if err != nil {
		t.Fatalf("EXPLAIN: %v\n%s", err, sql)
	}
	var doc []map[string]any
	if err := json.Unmarshal(plan, &doc); err != nil {
		t.Fatal(err)
	}
	var bad []string
	var walk func(n map[string]any)
	walk = func(n map[string]any) {
		if n["Node Type"] == "Seq Scan" {
			if rel, _ := n["Relation Name"].(string); rel == "outbox" || rel == "outbox_attempts" {
				bad = append(bad, rel)
			}
		}
		if kids, ok := n["Plans"].([]any); ok {
			for _, k := range kids {
				walk(k.(map[string]any))
			}
		}
	}
	walk(doc[0]["Plan"].(map[string]any))
	return bad, string(plan)
}

// TestQueriesNeverScanTheOutbox: every statement of the overview and event
// page, and the events list under every filter combination its form offers
// (status × Connected User × event name × lead × created range × ordering
// key with the statuses that allow it, with and
// without a page cursor, and error text with status dead and a time; a
// user with events in every status, with and without an event name), is
// planned without a sequential scan of outbox or outbox_attempts against a
// table of many delivered rows.
func TestQueriesNeverScanTheOutbox(t *testing.T) {
	n := 200_000
	if testing.Short() {
		n = 50_000
	}
	pool := bigOutbox(t, n)
	var mid int64
	if err := pool.QueryRow(context.Background(), `SELECT id FROM outbox WHERE lead_id = $1`, n/2).Scan(&mid); err != nil {
		t.Fatal(err)
	}
	// Each statement as the store sends it: dbsqlc's text, the store's
	// arguments, through the store's unnamed-statement wrapper.
	rec := &recorder{}
	st := store{q: dbsqlc.New(unnamed{rec})}
	ctx := context.Background()
	fixed := map[string]func(){
		"ConsoleOverview":      func() { _, _ = st.overview(ctx) },
		"ConsolePerMinute":     func() { _, _ = st.perMinute(ctx, 180) },
		"ConsoleBacklogByUser": func() { _, _ = st.backlog(ctx, 20) },
		"ConsoleTopErrors":     func() { _, _ = st.topErrors(ctx, 24*time.Hour, 10) },
		"ConsoleRelays":        func() { _, _ = st.relays(ctx) },
		"ConsoleEvent":         func() { _, _, _, _ = st.event(ctx, mid, false) },
		"ConsoleEventAttempts": func() { _, _ = st.q.ConsoleEventAttempts(ctx, mid) },
		"ConsoleEventRedrives": func() { _, _ = st.q.ConsoleEventRedrives(ctx, mid) },
		"ConsoleBlockedKeys":   func() { _, _ = st.blockedKeys(ctx, 20) },
		"ConsoleCanWrite":      func() { _, _ = st.canWrite(ctx) },
	}
	for name, run := range fixed {
		sql, args := rec.capture(t, name, run)
		if bad, plan := seqScans(t, pool, sql, args...); len(bad) > 0 {
			t.Errorf("%s scans %v sequentially:\n%s", name, bad, plan)
		}
	}
	now := time.Now()
	combos := 0
	for _, status := range []string{"", "waiting", "pending", "in_flight", "delivered", "dead", "skipped"} {
		for mask := 0; mask < 32; mask++ {
			if mask&16 != 0 && !contains(keyStatuses, status) {
				continue // the page refuses a key without an undelivered status
			}
			for _, cursor := range []int64{0, mid} {
				f := eventFilter{Status: status, Before: cursor}
				var desc []string
				if mask&1 != 0 {
					f.UserID = "usr_17"
					desc = append(desc, "user")
				}
				if mask&2 != 0 {
					f.EventName = "Lead Deleted" // 1 in 2,000: the hard case
					desc = append(desc, "event")
				}
				if mask&4 != 0 {
					f.LeadID = int64(n / 3)
					desc = append(desc, "lead")
				}
				if mask&16 != 0 {
					f.OrderingKey = "acct:17"
					desc = append(desc, "ordering key")
				}
				if mask&8 != 0 {
					f.CreatedFrom, f.CreatedBefore = now.Add(-2*time.Hour), now.Add(-time.Hour)
					desc = append(desc, "created range")
				}
				combos += checkList(t, pool, f, desc)
				if status == "dead" && mask&8 != 0 {
					f.ErrorContains = "422"
					combos += checkList(t, pool, f, append(desc, "error text"))
					f.CreatedBefore = time.Time{}
					combos += checkList(t, pool, f, append(desc, "error text, open range"))
				}
			}
		}
	}
	// A Connected User with events in every status (usr_17 has only
	// delivered ones), with and without an event name: no status reads the
	// settled index and the unsettled ones together.
	for _, status := range []string{"", "waiting", "pending", "in_flight", "delivered", "dead", "skipped"} {
		for _, name := range []string{"", "Lead Updated", "Lead Deleted"} {
			for _, cursor := range []int64{0, mid} {
				f := eventFilter{Status: status, UserID: "usr_3", EventName: name, Before: cursor}
				combos += checkList(t, pool, f, []string{"user with unsettled events", "event " + name})
			}
		}
	}
	// Only a start time (the created-from field alone), and only an end.
	for _, status := range []string{"", "delivered", "dead", "pending", "waiting", "skipped"} {
		combos += checkList(t, pool, eventFilter{Status: status, CreatedFrom: now.Add(-time.Hour)}, []string{"from only"})
		combos += checkList(t, pool, eventFilter{Status: status, CreatedBefore: now.Add(-time.Hour)}, []string{"before only"})
	}
	t.Logf("%d events-list filter combinations EXPLAINed over %d delivered rows", combos, n)
}

func checkList(t *testing.T, pool *pgxpool.Pool, f eventFilter, desc []string) int {
	t.Helper()
	rec := &recorder{}
	st := store{q: dbsqlc.New(unnamed{rec})}
	sql, args := rec.capture(t, "ConsoleListEvents", func() { _, _ = st.listEvents(context.Background(), f, PageSizeDefault+1) })
	bad, plan := seqScans(t, pool, sql, args...)
	if len(bad) > 0 {
		t.Errorf("events list, status %q, filters [%s], cursor %v: sequential scan of %v\n%s", f.Status, strings.Join(desc, ", "), f.Before != 0, bad, compact(plan))
	}
	return 1
}

var errRecorded = errors.New("recorded, not run")

// recorder is a dbsqlc.DBTX that runs nothing: it keeps the last
// statement's text and arguments.
type recorder struct {
	sql  string
	args []any
}

func (r *recorder) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	r.sql, r.args = sql, args
	return pgconn.CommandTag{}, errRecorded
}

func (r *recorder) Query(_ context.Context, sql string, args ...any) (pgx.Rows, error) {
	r.sql, r.args = sql, args
	return nil, errRecorded
}

func (r *recorder) QueryRow(_ context.Context, sql string, args ...any) pgx.Row {
	r.sql, r.args = sql, args
	return errRow{}
}

type errRow struct{}

func (errRow) Scan(...any) error { return errRecorded }

// capture runs run and returns the one statement it sent: dbsqlc's text
// of the query named want and the arguments, which must start with
// pgx.QueryExecModeExec (planned with its values, as the console runs it).
func (r *recorder) capture(t *testing.T, want string, run func()) (string, []any) {
	t.Helper()
	r.sql, r.args = "", nil
	run()
	if !strings.HasPrefix(r.sql, "-- name: "+want+" ") {
		t.Fatalf("%s: the store sent %.60q", want, r.sql)
	}
	if len(r.args) == 0 || r.args[0] != pgx.QueryExecModeExec {
		t.Fatalf("%s: not sent as an unnamed statement (QueryExecModeExec first): %v", want, r.args)
	}
	return r.sql, r.args
}

func compact(plan string) string {
	var lines []string
	for _, l := range strings.Split(plan, "\n") {
		if strings.Contains(l, "Node Type") || strings.Contains(l, "Index Name") || strings.Contains(l, "Filter") || strings.Contains(l, "Relation Name") {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	return strings.Join(lines, " ")
}
