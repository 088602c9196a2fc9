package sqlfiles_test

import (
	"context"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/operator"
	"github.com/paragon-outbox/outbox-relay/internal/operator/operatortest"
	"github.com/paragon-outbox/outbox-relay/internal/testdb"
	sqlfiles "github.com/paragon-outbox/outbox-relay/sql"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// psqlVar matches psql's quoted-literal interpolation, :'name'.
var psqlVar = regexp.MustCompile(`:'([A-Za-z_][A-Za-z0-9_]*)'`)

// substitute does what psql does for :'name': it replaces each with the
// variable's value as a quoted SQL literal. A variable without a value
// fails the test (psql would send the text as is, and the query would fail).
func substitute(t *testing.T, query string, vars map[string]string) string {
	t.Helper()
	return psqlVar.ReplaceAllStringFunc(query, func(m string) string {
		name := psqlVar.FindStringSubmatch(m)[1]
		v, ok := vars[name]
		if !ok {
			t.Fatalf("query uses psql variable %q and the test gives no value", name)
		}
		return "'" + strings.ReplaceAll(v, "'", "''") + "'"
	})
}

func TestSubstitute(t *testing.T) {
	got := substitute(t, `SELECT :'a', x::text, ':b' FROM t WHERE y = :'a' AND z = :'b_2'`, map[string]string{"a": "it's", "b_2": "7"})
	want := `SELECT 'it''s', x::text, ':b' FROM t WHERE y = 'it''s' AND z = '7'`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// operatorQueries lists every operator query the tests run; a new file in
// sql/operator must be added here with a test.
var operatorQueries = []string{"backlog_by_user", "blocked_keys", "deliveries_per_minute", "failures_by_error", "lead_attempt_history", "stuck_in_flight"}

// TestOperatorFilesAreDocumentedAndTested: each embedded file has a test in
// this file, a header comment naming it, and names in that header every
// psql variable it takes.
func TestOperatorFilesAreDocumentedAndTested(t *testing.T) {
	names := sqlfiles.OperatorNames()
	if !slices.Equal(names, operatorQueries) {
		t.Fatalf("operator queries %v, tested %v: add a test for each new file", names, operatorQueries)
	}
	for _, name := range names {
		q, err := sqlfiles.Operator(name)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(q, "-- "+name+": ") {
			t.Errorf("%s.sql does not start with a header comment \"-- %s: ...\"", name, name)
		}
		var header strings.Builder
		for _, line := range strings.Split(q, "\n") {
			if !strings.HasPrefix(line, "--") {
				break
			}
			header.WriteString(line + "\n")
		}
		for _, m := range psqlVar.FindAllStringSubmatch(q, -1) {
			if !strings.Contains(header.String(), "-v "+m[1]+"=") {
				t.Errorf("%s.sql takes :'%s' but its header does not show how to set it (-v %s=...)", name, m[1], m[1])
			}
		}
		if len(psqlVar.FindAllString(q, -1)) == 0 && !strings.Contains(header.String(), "Takes no variables") {
			t.Errorf("%s.sql: header should say it takes no variables", name)
		}
	}
	if _, err := sqlfiles.Operator("no_such_query"); err == nil || !strings.Contains(err.Error(), "no_such_query") {
		t.Errorf("Operator(no_such_query) error = %v", err)
	}
}

const err500 = "paragon answered 500 Internal Server Error: upstream"

// fixture is the known mix of events the operator queries are run against.
type fixture struct {
	expiredInFlight operatortest.Row
	history         operatortest.Row // the lead of lead_attempt_history
	minuteBase      time.Time        // date_trunc('minute', now()) when the deliveries were placed
}

func newFixture(t *testing.T, pool *pgxpool.Pool) fixture {
	t.Helper()
	ctx := context.Background()
	add := func(e operatortest.Event) operatortest.Row { return operatortest.Add(t, pool, e) }
	var f fixture
	// usr_a: 3 pending (one retrying), 1 in flight with an expired lease, 1 dead.
	add(operatortest.Event{User: "usr_a", CreatedAgo: 3 * time.Hour})
	add(operatortest.Event{User: "usr_a", Attempts: 2, LastError: err500, HTTPStatus: 500, NextAttemptIn: time.Minute, CreatedAgo: 2 * time.Hour})
	add(operatortest.Event{User: "usr_a", CreatedAgo: time.Minute})
	f.expiredInFlight = add(operatortest.Event{User: "usr_a", Status: "in_flight", Attempts: 4, LastError: err500, HTTPStatus: 500,
		LeaseOwner: "relay-gone", LeaseExpiresIn: -5 * time.Minute, CreatedAgo: 30 * time.Minute})
	add(operatortest.Event{User: "usr_a", Status: "dead", Attempts: 1, LastError: "rejected, not retried: paragon answered 422", HTTPStatus: 422, CreatedAgo: 5 * time.Hour})
	// usr_b: 1 pending, 1 in flight with a live lease, 2 dead with the same error.
	add(operatortest.Event{User: "usr_b", CreatedAgo: time.Hour})
	add(operatortest.Event{User: "usr_b", Status: "in_flight", Attempts: 1, LeaseOwner: "relay-live", LeaseExpiresIn: time.Minute, CreatedAgo: 10 * time.Minute})
	add(operatortest.Event{User: "usr_b", Status: "dead", Attempts: 25, LastError: "gave up after 25 attempts: " + err500, HTTPStatus: 500, CreatedAgo: 6 * time.Hour})
	add(operatortest.Event{User: "usr_b", Status: "dead", Attempts: 25, LastError: "gave up after 25 attempts: " + err500, HTTPStatus: 500, CreatedAgo: 7 * time.Hour})
	// usr_d: dead only, with the 422 error too; no backlog.
	add(operatortest.Event{User: "usr_d", Status: "dead", Attempts: 1, LastError: "rejected, not retried: paragon answered 422", HTTPStatus: 422, CreatedAgo: 8 * time.Hour})

	// All deliveries are placed relative to one minute read once, so the
	// buckets are exact even if the clock crosses a minute meanwhile.
	if err := pool.QueryRow(ctx, `SELECT date_trunc('minute', now())`).Scan(&f.minuteBase); err != nil {
		t.Fatal(err)
	}
	deliver := func(id int64, at, took time.Duration) {
		t.Helper()
		// delivered_at = base + at; created_at = delivered_at - took
		if _, err := pool.Exec(ctx, `
			UPDATE outbox
			SET delivered_at = $2::timestamptz + $3::bigint * interval '1 millisecond',
			    created_at   = $2::timestamptz + $3::bigint * interval '1 millisecond' - $4::bigint * interval '1 millisecond'
			WHERE id = $1`, id, f.minuteBase, at.Milliseconds(), took.Milliseconds()); err != nil {
			t.Fatal(err)
		}
	}
	// usr_c: delivered events 10 s into the minute k minutes back, each 50 s
	// after it was written; one 90 minutes ago, outside the hour; one more 5
	// minutes back that took 170 s.
	for _, k := range []int{0, 5, 5, 30, 90} {
		r := add(operatortest.Event{User: "usr_c", Status: "delivered", Attempts: 1})
		deliver(r.ID, -time.Duration(k)*time.Minute+10*time.Second, 50*time.Second)
	}
	r := add(operatortest.Event{User: "usr_c", Status: "delivered", Attempts: 1})
	deliver(r.ID, -5*time.Minute+20*time.Second, 170*time.Second)

	// usr_h: the lead whose history is shown. Written 1h ago; attempts 1-2
	// failed; re-driven 30 minutes ago; attempt 3 interrupted 20 minutes ago;
	// attempt 4 delivered it about 12 minutes ago.
	f.history = add(operatortest.Event{User: "usr_h", Status: "dead", Attempts: 2, LastError: err500, HTTPStatus: 500, CreatedAgo: time.Hour})
	if _, err := operator.Redrive(ctx, pool, operator.Filter{IDs: []int64{f.history.ID}}, "alice", "Paragon incident over", false); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE outbox_redrives SET redriven_at = now() - interval '30 minutes' WHERE outbox_id = $1`, f.history.ID); err != nil {
		t.Fatal(err)
	}
	operatortest.AddAttempt(t, pool, f.history.ID, operatortest.Attempt{Number: 3, RelayID: "relay-gone", Error: "interrupted: lease expired before the relay reported an outcome", StartedAgo: 20 * time.Minute, Interrupted: true})
	operatortest.AddAttempt(t, pool, f.history.ID, operatortest.Attempt{Number: 4, RelayID: "relay-live", HTTPStatus: 200, StartedAgo: 12 * time.Minute})
	if _, err := pool.Exec(ctx, `
		UPDATE outbox SET status = 'delivered', attempts = 4,
		       delivered_at = $2::timestamptz - interval '12 minutes' + interval '30 seconds'
		WHERE id = $1`, f.history.ID, f.minuteBase); err != nil {
		t.Fatal(err)
	}
	return f
}

// runOperator runs operator query name with vars and returns its rows.
func runOperator(t *testing.T, pool *pgxpool.Pool, name string, vars map[string]string) pgx.Rows {
	t.Helper()
	q, err := sqlfiles.Operator(name)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(context.Background(), substitute(t, q, vars))
	if err != nil {
		t.Fatalf("%s.sql: %v", name, err)
	}
	return rows
}

func collect[T any](t *testing.T, rows pgx.Rows) []T {
	t.Helper()
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[T])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func near(got, want, tol time.Duration) bool { return got >= want-tol && got <= want+tol }

func TestOperatorQueries(t *testing.T) {
	db := testdb.New(t)
	f := newFixture(t, db.Pool)

	t.Run("backlog_by_user", func(t *testing.T) {
		type row struct {
			UserID                            string
			Pending, Retrying, InFlight, Dead int64
			OldestCreatedAt                   time.Time
			OldestAge                         interval
			NextDueAt                         *time.Time
		}
		got := collect[row](t, runOperator(t, db.Pool, "backlog_by_user", nil))
		if len(got) != 2 {
			t.Fatalf("rows %+v, want usr_a and usr_b only (usr_c has only delivered events, usr_d only dead)", got)
		}
		a, b := got[0], got[1]
		if a.UserID != "usr_a" || a.Pending != 3 || a.Retrying != 1 || a.InFlight != 1 || a.Dead != 1 || !near(a.OldestAge.d(), 3*time.Hour, time.Minute) {
			t.Errorf("usr_a: %+v", a)
		}
		if a.NextDueAt == nil || time.Since(*a.NextDueAt) > 5*time.Minute {
			t.Errorf("usr_a next due %v, want about now (its oldest pending event is due)", a.NextDueAt)
		}
		if b.UserID != "usr_b" || b.Pending != 1 || b.Retrying != 0 || b.InFlight != 1 || b.Dead != 2 || !near(b.OldestAge.d(), time.Hour, time.Minute) {
			t.Errorf("usr_b: %+v", b)
		}
	})

	t.Run("failures_by_error", func(t *testing.T) {
		type row struct {
			LastError                        string
			HTTP                             *int32
			Events, Dead, Retrying, Users    int64
			OldestCreatedAt, NewestCreatedAt time.Time
		}
		got := collect[row](t, runOperator(t, db.Pool, "failures_by_error", nil))
		type want struct {
			err                          string
			http                         int32
			events, dead, retrying, user int64
			oldestAgo, newestAgo         time.Duration
		}
		wants := []want{
			// usr_a's pending retry (2h) and expired in-flight event (30m); the
			// re-driven, now delivered usr_h event no longer counts.
			{err500, 500, 2, 0, 2, 1, 2 * time.Hour, 30 * time.Minute},
			{"gave up after 25 attempts: " + err500, 500, 2, 2, 0, 1, 7 * time.Hour, 6 * time.Hour},
			{"rejected, not retried: paragon answered 422", 422, 2, 2, 0, 2, 8 * time.Hour, 5 * time.Hour},
		}
		if len(got) != len(wants) {
			t.Fatalf("rows %+v, want %d groups", got, len(wants))
		}
		// Equal counts sort by error text.
		slices.SortStableFunc(wants, func(x, y want) int {
			if x.events != y.events {
				return int(y.events - x.events)
			}
			return strings.Compare(x.err, y.err)
		})
		for i, w := range wants {
			g := got[i]
			if g.LastError != w.err || g.HTTP == nil || *g.HTTP != w.http || g.Events != w.events || g.Dead != w.dead ||
				g.Retrying != w.retrying || g.Users != w.user ||
				!near(time.Since(g.OldestCreatedAt), w.oldestAgo, time.Minute) || !near(time.Since(g.NewestCreatedAt), w.newestAgo, time.Minute) {
				t.Errorf("row %d: %+v\nwant %+v", i, g, w)
			}
		}
	})

	t.Run("deliveries_per_minute", func(t *testing.T) {
		type row struct {
			Minute    time.Time
			Delivered int64
			Avg, Max  *interval
		}
		got := collect[row](t, runOperator(t, db.Pool, "deliveries_per_minute", nil))
		if len(got) != 60 {
			t.Fatalf("%d rows, want 60 (one per minute of the last hour)", len(got))
		}
		want := map[time.Time]row{
			f.minuteBase: {Delivered: 1, Avg: iv(50 * time.Second), Max: iv(50 * time.Second)},
			// two of 50 s and one of 170 s
			f.minuteBase.Add(-5 * time.Minute): {Delivered: 3, Avg: iv(90 * time.Second), Max: iv(170 * time.Second)},
			// usr_h's event, about 48 minutes after it was written (not checked)
			f.minuteBase.Add(-12 * time.Minute): {Delivered: 1},
			f.minuteBase.Add(-30 * time.Minute): {Delivered: 1, Avg: iv(50 * time.Second), Max: iv(50 * time.Second)},
		}
		var total int64
		for i, g := range got {
			if i > 0 && g.Minute.Sub(got[i-1].Minute) != time.Minute {
				t.Fatalf("minutes not consecutive at row %d: %s after %s", i, g.Minute, got[i-1].Minute)
			}
			total += g.Delivered
			w := want[g.Minute] // zero for every other minute
			if g.Delivered != w.Delivered {
				t.Errorf("minute %s: %d delivered, want %d", g.Minute, g.Delivered, w.Delivered)
			}
			if g.Delivered == 0 && (g.Avg != nil || g.Max != nil) {
				t.Errorf("minute %s without deliveries has times %v %v", g.Minute, g.Avg, g.Max)
			}
			if w.Avg != nil && (g.Avg == nil || g.Avg.d() != w.Avg.d() || g.Max == nil || g.Max.d() != w.Max.d()) {
				t.Errorf("minute %s: avg %v max %v, want %v %v", g.Minute, g.Avg, g.Max, w.Avg, w.Max)
			}
		}
		if total != 6 {
			t.Errorf("%d deliveries in the hour, want 6 (the one 90 minutes ago is outside)", total)
		}
		if last := got[len(got)-1].Minute; last.Before(f.minuteBase) || last.Sub(f.minuteBase) > time.Minute {
			t.Errorf("last row %s, want the current minute %s", last, f.minuteBase)
		}
	})

	t.Run("stuck_in_flight", func(t *testing.T) {
		type row struct {
			ID                        int64
			EventID, UserID           string
			LeadID                    int64
			LeaseOwner                string
			Attempts                  int32
			ClaimedAt, LeaseExpiresAt time.Time
			ExpiredFor                interval
		}
		got := collect[row](t, runOperator(t, db.Pool, "stuck_in_flight", nil))
		if len(got) != 1 {
			t.Fatalf("rows %+v, want only the event whose lease expired (the live lease is not stuck)", got)
		}
		g := got[0]
		if g.ID != f.expiredInFlight.ID || g.EventID != f.expiredInFlight.EventID || g.LeadID != f.expiredInFlight.LeadID ||
			g.UserID != "usr_a" || g.LeaseOwner != "relay-gone" || g.Attempts != 4 || !near(g.ExpiredFor.d(), 5*time.Minute, 30*time.Second) {
			t.Errorf("stuck row %+v", g)
		}
	})

	t.Run("lead_attempt_history", func(t *testing.T) {
		type row struct {
			OutboxID      int64
			EventID       string
			CurrentStatus string
			At            time.Time
			Kind          string
			Attempt       *int32
			RelayID       *string
			HTTPStatus    *int32
			Took          *interval
			Outcome       *string
			Detail        *string
		}
		got := collect[row](t, runOperator(t, db.Pool, "lead_attempt_history", map[string]string{"lead_id": itoa(f.history.LeadID)}))
		type want struct {
			kind    string
			attempt int32
			ago     time.Duration
			http    int32
			outcome string
			detail  string
		}
		wants := []want{
			{"created", 0, time.Hour, 0, "", "Lead Created for user usr_h"},
			{"attempt", 1, time.Hour - time.Second, 500, "failed", err500},
			{"attempt", 2, time.Hour - 2*time.Second, 500, "failed", err500},
			{"redrive", 0, 30 * time.Minute, 0, "re-driven", "by alice (Paragon incident over); was dead after 2 attempts: " + err500},
			{"attempt", 3, 20 * time.Minute, 0, "interrupted", "interrupted: lease expired before the relay reported an outcome"},
			{"attempt", 4, 12 * time.Minute, 200, "delivered", ""},
		}
		if len(got) != len(wants) {
			t.Fatalf("%d rows, want %d: %+v", len(got), len(wants), got)
		}
		for i, w := range wants {
			g := got[i]
			if g.OutboxID != f.history.ID || g.EventID != f.history.EventID || g.CurrentStatus != "delivered" || g.Kind != w.kind ||
				!near(time.Since(g.At), w.ago, 10*time.Second) || deref(g.Attempt) != w.attempt || deref(g.HTTPStatus) != w.http ||
				deref(g.Outcome) != w.outcome || deref(g.Detail) != w.detail {
				t.Errorf("row %d: %+v (attempt %d http %d outcome %q detail %q)\nwant %+v", i, g, deref(g.Attempt), deref(g.HTTPStatus), deref(g.Outcome), deref(g.Detail), w)
			}
		}
		if got[5].Took == nil || got[5].Took.d() != 100*time.Millisecond || got[4].Took != nil || deref(got[5].RelayID) != "relay-live" {
			t.Errorf("durations/relays: %+v %+v", got[4], got[5])
		}
		// A lead without events (or that does not exist): no rows.
		if rows := collect[row](t, runOperator(t, db.Pool, "lead_attempt_history", map[string]string{"lead_id": "1"})); len(rows) != 0 {
			t.Errorf("unknown lead: %+v", rows)
		}
	})
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// interval scans a Postgres interval (without months).
type interval struct{ pgtype.Interval }

func (i interval) d() time.Duration {
	return time.Duration(i.Microseconds)*time.Microsecond + time.Duration(i.Days)*24*time.Hour
}

func (i interval) String() string { return i.d().String() }

func iv(d time.Duration) *interval {
	return &interval{pgtype.Interval{Microseconds: d.Microseconds(), Valid: true}}
}

// TestBlockedKeys: key k1's first event is dead with two events behind it,
// k2's dead event has nothing behind it (blocked for its next event), k3's
// dead event is behind a pending one (not the head: k3 is not blocked by
// it), k4 is flowing; unkeyed dead events are not keys.
func TestBlockedKeys(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	enqueue := func(key string) int64 {
		t.Helper()
		var id int64
		var k any
		if key != "" {
			k = key
		}
		var eid string
		if err := db.Pool.QueryRow(ctx, `SELECT outbox_enqueue('Step', 'usr_' || coalesce($1, 'none'), '{}', $1)::text`, k).Scan(&eid); err != nil {
			t.Fatal(err)
		}
		if err := db.Pool.QueryRow(ctx, `SELECT id FROM outbox WHERE event_id = $1::uuid`, eid).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	dead := func(id int64, ago time.Duration) {
		t.Helper()
		if _, err := db.Pool.Exec(ctx, `UPDATE outbox SET status = 'dead', attempts = 3, last_http_status = 422, last_error = 'rejected, not retried: 422',
			created_at = now() - $2::bigint * interval '1 millisecond' WHERE id = $1`, id, ago.Milliseconds()); err != nil {
			t.Fatal(err)
		}
	}
	k1 := enqueue("k1")
	enqueue("k1")
	enqueue("k1")
	k2 := enqueue("k2")
	enqueue("k3")
	k3b := enqueue("k3")
	enqueue("k4")
	u := enqueue("")
	dead(k1, 2*time.Hour)
	dead(k2, time.Hour)
	dead(k3b, 3*time.Hour)
	dead(u, 4*time.Hour)

	type row struct {
		OrderingKey    string
		DeadHeadID     int64
		EventName      string
		UserID         string
		Attempts       int32
		LastHTTPStatus *int32
		LastError      string
		CreatedAt      time.Time
		Waiting        int64
		BlockedFor     interval
	}
	got := collect[row](t, runOperator(t, db.Pool, "blocked_keys", nil))
	if len(got) != 2 {
		t.Fatalf("rows %+v, want k1 then k2", got)
	}
	if g := got[0]; g.OrderingKey != "k1" || g.DeadHeadID != k1 || g.Waiting != 2 || g.UserID != "usr_k1" || g.Attempts != 3 ||
		g.LastHTTPStatus == nil || *g.LastHTTPStatus != 422 || !near(g.BlockedFor.d(), 2*time.Hour, time.Minute) {
		t.Errorf("k1: %+v", g)
	}
	if g := got[1]; g.OrderingKey != "k2" || g.DeadHeadID != k2 || g.Waiting != 0 || !near(g.BlockedFor.d(), time.Hour, time.Minute) {
		t.Errorf("k2: %+v", g)
	}
}
