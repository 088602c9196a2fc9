package operator_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/operator"
	"github.com/paragon-outbox/outbox-relay/internal/operator/operatortest"
	"github.com/paragon-outbox/outbox-relay/internal/testdb"
)

const err500 = "paragon answered 500 Internal Server Error: upstream"

// mix is a known set of events: four dead ones that differ in user, error
// and time of death, and live or delivered ones that share their user and
// error but must never be re-driven.
type mix struct {
	d1, d2, d3, d4 operatortest.Row // dead
	p1, f1, ok1    operatortest.Row // pending (retrying), in_flight, delivered
}

func newMix(t *testing.T, pool *pgxpool.Pool) mix {
	t.Helper()
	add := func(e operatortest.Event) operatortest.Row { return operatortest.Add(t, pool, e) }
	return mix{
		// Died about 3h ago (last attempt 3h - 25s ago).
		d1: add(operatortest.Event{User: "usr_a", Status: "dead", Attempts: 25, LastError: "gave up after 25 attempts: " + err500, HTTPStatus: 500, CreatedAgo: 3 * time.Hour}),
		// Died about 10 minutes ago, rejected.
		d2: add(operatortest.Event{User: "usr_a", Status: "dead", Attempts: 1, LastError: "rejected, not retried: paragon answered 422 Unprocessable Entity", HTTPStatus: 422, CreatedAgo: 10 * time.Minute}),
		// Died about 30 minutes ago.
		d3: add(operatortest.Event{User: "usr_b", Status: "dead", Attempts: 25, LastError: "gave up after 25 attempts: " + err500, HTTPStatus: 500, CreatedAgo: 30 * time.Minute}),
		// Died two days ago; its error has LIKE metacharacters.
		d4:  add(operatortest.Event{User: "usr_b", Status: "dead", Attempts: 2, LastError: "rejected: field 50%_off is invalid", HTTPStatus: 400, CreatedAgo: 48 * time.Hour}),
		p1:  add(operatortest.Event{User: "usr_a", Status: "pending", Attempts: 2, LastError: err500, HTTPStatus: 500, NextAttemptIn: time.Minute, CreatedAgo: 5 * time.Minute}),
		f1:  add(operatortest.Event{User: "usr_a", Status: "in_flight", Attempts: 3, LastError: err500, HTTPStatus: 500, LeaseExpiresIn: time.Minute, CreatedAgo: 5 * time.Minute}),
		ok1: add(operatortest.Event{User: "usr_a", Status: "delivered", Attempts: 1, DeliveredAgo: time.Minute, CreatedAgo: 5 * time.Minute}),
	}
}

// rowState is every outbox column an operator action could change.
type rowState struct {
	Status, LastError            string
	Attempts, AttemptsBase, HTTP int32
	NextAttemptAt                time.Time
	Delivered, Lease             bool
	AttemptRows, RedriveRows     int64
}

func snapshot(t *testing.T, pool *pgxpool.Pool) map[int64]rowState {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
		SELECT o.id, o.status, coalesce(o.last_error, ''), o.attempts, o.attempts_base, coalesce(o.last_http_status, 0),
		       o.next_attempt_at, o.delivered_at IS NOT NULL, o.lease_owner IS NOT NULL,
		       (SELECT count(*) FROM outbox_attempts a WHERE a.outbox_id = o.id),
		       (SELECT count(*) FROM outbox_redrives r WHERE r.outbox_id = o.id)
		FROM outbox o`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]rowState{}
	for rows.Next() {
		var id int64
		var s rowState
		if err := rows.Scan(&id, &s.Status, &s.LastError, &s.Attempts, &s.AttemptsBase, &s.HTTP, &s.NextAttemptAt,
			&s.Delivered, &s.Lease, &s.AttemptRows, &s.RedriveRows); err != nil {
			t.Fatal(err)
		}
		out[id] = s
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

type redriveRow struct {
	OutboxID               int64
	By, Reason, PrevStatus string
	PrevAttempts, PrevHTTP int32
	PrevError              string
	AgeSeconds             float64 // now() - redriven_at
}

func redrives(t *testing.T, pool *pgxpool.Pool) []redriveRow {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
		SELECT outbox_id, redriven_by, coalesce(reason, '<null>'), previous_status, previous_attempts,
		       coalesce(previous_last_http_status, 0), coalesce(previous_last_error, '<null>'),
		       extract(epoch FROM now() - redriven_at)::float8
		FROM outbox_redrives ORDER BY outbox_id, id`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[redriveRow])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRedriveByEachFilter(t *testing.T) {
	since := func(d time.Duration) time.Time { return time.Now().Add(-d) }
	cases := []struct {
		name      string
		filter    func(m mix) operator.Filter
		want      func(m mix) []operatortest.Row
		untouched func(m mix) []int64
	}{
		{"ids, of which only one is dead",
			func(m mix) operator.Filter {
				return operator.Filter{IDs: []int64{m.ok1.ID, m.d1.ID, m.p1.ID, m.f1.ID, 1}}
			},
			func(m mix) []operatortest.Row { return []operatortest.Row{m.d1} },
			func(m mix) []int64 { return []int64{m.ok1.ID, m.p1.ID, m.f1.ID, 1} }},
		{"user", func(m mix) operator.Filter { return operator.Filter{UserID: "usr_a"} },
			func(m mix) []operatortest.Row { return []operatortest.Row{m.d1, m.d2} }, nil},
		{"error text, any case", func(m mix) operator.Filter { return operator.Filter{ErrorContains: "500 INTERNAL server"} },
			func(m mix) []operatortest.Row { return []operatortest.Row{m.d1, m.d3} }, nil},
		{"error text with LIKE metacharacters is literal", func(m mix) operator.Filter { return operator.Filter{ErrorContains: "%"} },
			func(m mix) []operatortest.Row { return []operatortest.Row{m.d4} }, nil},
		{"error text with underscore is literal", func(m mix) operator.Filter { return operator.Filter{ErrorContains: "0%_o"} },
			func(m mix) []operatortest.Row { return []operatortest.Row{m.d4} }, nil},
		{"died in the last hour", func(m mix) operator.Filter { return operator.Filter{DeadSince: since(time.Hour)} },
			func(m mix) []operatortest.Row { return []operatortest.Row{m.d2, m.d3} }, nil},
		{"filters combine with AND", func(m mix) operator.Filter {
			return operator.Filter{UserID: "usr_b", ErrorContains: "500", DeadSince: since(24 * time.Hour)}
		},
			func(m mix) []operatortest.Row { return []operatortest.Row{m.d3} }, nil},
		{"ids and user that disagree select nothing", func(m mix) operator.Filter {
			return operator.Filter{IDs: []int64{m.d1.ID}, UserID: "usr_b"}
		},
			func(m mix) []operatortest.Row { return nil },
			func(m mix) []int64 { return []int64{m.d1.ID} }},
		{"all", func(m mix) operator.Filter { return operator.Filter{All: true} },
			func(m mix) []operatortest.Row { return []operatortest.Row{m.d1, m.d2, m.d3, m.d4} }, nil},
		{"all with a user is that user's", func(m mix) operator.Filter { return operator.Filter{All: true, UserID: "usr_b"} },
			func(m mix) []operatortest.Row { return []operatortest.Row{m.d3, m.d4} }, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := testdb.New(t)
			ctx := context.Background()
			m := newMix(t, db.Pool)
			f := tc.filter(m)
			var wantIDs []int64
			for _, r := range tc.want(m) {
				wantIDs = append(wantIDs, r.ID)
			}
			slices.Sort(wantIDs)
			var wantUntouched []int64
			if tc.untouched != nil {
				wantUntouched = tc.untouched(m)
			}
			before := snapshot(t, db.Pool)

			// Dry run: the same answer, nothing changes.
			dry, err := operator.Redrive(ctx, db.Pool, f, "alice", "dry", true)
			if err != nil {
				t.Fatal(err)
			}
			if !dry.DryRun || dry.Moved != int64(len(wantIDs)) || !slices.Equal(dry.IDs, wantIDs) || !slices.Equal(dry.Untouched, nonNil(wantUntouched)) {
				t.Fatalf("dry run = %+v, want ids %v untouched %v", dry, wantIDs, wantUntouched)
			}
			if after := snapshot(t, db.Pool); !maps.Equal(before, after) {
				t.Fatalf("dry run changed rows:\nbefore %v\nafter  %v", before, after)
			}
			if rd := redrives(t, db.Pool); len(rd) != 0 {
				t.Fatalf("dry run recorded re-drives: %v", rd)
			}

			res, err := operator.Redrive(ctx, db.Pool, f, "alice", "Paragon fixed it", false)
			if err != nil {
				t.Fatal(err)
			}
			if res.DryRun || res.Moved != int64(len(wantIDs)) || !slices.Equal(res.IDs, wantIDs) || !slices.Equal(res.Untouched, nonNil(wantUntouched)) {
				t.Fatalf("result = %+v, want ids %v untouched %v", res, wantIDs, wantUntouched)
			}
			after := snapshot(t, db.Pool)
			rds := redrives(t, db.Pool)
			if len(rds) != len(wantIDs) {
				t.Fatalf("outbox_redrives has %d rows, want %d: %v", len(rds), len(wantIDs), rds)
			}
			for i, id := range wantIDs {
				b, a := before[id], after[id]
				if a.Status != "pending" || a.Attempts != b.Attempts || a.AttemptsBase != b.Attempts || a.LastError != "" || a.HTTP != 0 {
					t.Errorf("row %d after re-drive: %+v (before %+v)", id, a, b)
				}
				if d := time.Since(a.NextAttemptAt); d < -time.Second || d > time.Minute {
					t.Errorf("row %d due at %s, want now", id, a.NextAttemptAt)
				}
				if a.AttemptRows != b.AttemptRows || a.RedriveRows != 1 {
					t.Errorf("row %d: %d attempts rows (was %d), %d re-drives", id, a.AttemptRows, b.AttemptRows, a.RedriveRows)
				}
				ev := res.Events[i]
				if ev.ID != id || ev.PreviousAttempts != b.Attempts || ev.PreviousLastError == nil || *ev.PreviousLastError != b.LastError ||
					ev.PreviousLastHTTPStatus == nil || *ev.PreviousLastHTTPStatus != b.HTTP {
					t.Errorf("result event %+v, row before %+v", ev, b)
				}
				rd := rds[i]
				want := redriveRow{OutboxID: id, By: "alice", Reason: "Paragon fixed it", PrevStatus: "dead",
					PrevAttempts: b.Attempts, PrevHTTP: b.HTTP, PrevError: b.LastError, AgeSeconds: rd.AgeSeconds}
				if rd != want || rd.AgeSeconds < 0 || rd.AgeSeconds > 60 {
					t.Errorf("outbox_redrives row %+v, want %+v", rd, want)
				}
			}
			for id, b := range before {
				if !slices.Contains(wantIDs, id) && after[id] != b {
					t.Errorf("row %d not selected but changed: %+v -> %+v", id, b, after[id])
				}
			}
			// A second identical re-drive finds nothing: the rows are no longer dead.
			again, err := operator.Redrive(ctx, db.Pool, f, "alice", "again", false)
			if err != nil || again.Moved != 0 {
				t.Fatalf("second re-drive: %+v %v", again, err)
			}
		})
	}
}

func nonNil(s []int64) []int64 {
	if s == nil {
		return []int64{}
	}
	return s
}

func TestRedriveRefusesEmptyFilterAndAnonymousActor(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	m := newMix(t, db.Pool)
	before := snapshot(t, db.Pool)
	for _, dry := range []bool{false, true} {
		if _, err := operator.Redrive(ctx, db.Pool, operator.Filter{}, "alice", "", dry); !errors.Is(err, operator.ErrEmptyFilter) {
			t.Errorf("empty filter (dry %v): err = %v", dry, err)
		}
		if _, err := operator.Redrive(ctx, db.Pool, operator.Filter{IDs: []int64{}}, "alice", "", dry); !errors.Is(err, operator.ErrEmptyFilter) {
			t.Errorf("empty id list (dry %v): err = %v", dry, err)
		}
	}
	if _, err := operator.Redrive(ctx, db.Pool, operator.Filter{IDs: []int64{m.d1.ID}}, "  ", "", false); !errors.Is(err, operator.ErrNoActor) {
		t.Errorf("blank by: err = %v", err)
	}
	// A dry run records nothing, so it needs no name.
	if res, err := operator.Redrive(ctx, db.Pool, operator.Filter{IDs: []int64{m.d1.ID}}, "", "", true); err != nil || res.Moved != 1 {
		t.Errorf("dry run without by: %+v %v", res, err)
	}
	if after := snapshot(t, db.Pool); !maps.Equal(before, after) {
		t.Fatal("a refused re-drive changed rows")
	}
	// Without a reason, reason is NULL.
	if _, err := operator.Redrive(ctx, db.Pool, operator.Filter{IDs: []int64{m.d2.ID}}, "bob", " ", false); err != nil {
		t.Fatal(err)
	}
	if rd := redrives(t, db.Pool); len(rd) != 1 || rd[0].Reason != "<null>" || rd[0].By != "bob" {
		t.Fatalf("redrives %+v", rd)
	}
}

// TestRedriveIsCompareAndSet: a dead row that another transaction moves on
// while the re-drive waits for its lock is left alone.
func TestRedriveIsCompareAndSet(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	m := newMix(t, db.Pool)
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	// Someone else (another operator's re-drive, say) holds d1 and makes it pending.
	if _, err := tx.Exec(ctx, `UPDATE outbox SET status = 'pending', next_attempt_at = now() + interval '1 hour' WHERE id = $1`, m.d1.ID); err != nil {
		t.Fatal(err)
	}
	type out struct {
		res operator.Result
		err error
	}
	done := make(chan out, 1)
	go func() {
		res, err := operator.Redrive(ctx, db.Pool, operator.Filter{IDs: []int64{m.d1.ID, m.d3.ID}}, "alice", "", false)
		done <- out{res, err}
	}()
	waitForLockWait(t, db.Pool)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	o := <-done
	if o.err != nil {
		t.Fatal(o.err)
	}
	if !slices.Equal(o.res.IDs, []int64{m.d3.ID}) || !slices.Equal(o.res.Untouched, []int64{m.d1.ID}) {
		t.Fatalf("result %+v: want only d3 moved, d1 untouched", o.res)
	}
	st := snapshot(t, db.Pool)
	if d1 := st[m.d1.ID]; d1.Status != "pending" || d1.AttemptsBase != 0 || d1.RedriveRows != 0 || time.Until(d1.NextAttemptAt) < 50*time.Minute {
		t.Fatalf("d1 was re-driven over the other transaction's change: %+v", d1)
	}
}

// waitForLockWait returns once some session of this database waits on a lock.
func waitForLockWait(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		err := pool.QueryRow(context.Background(), `
			SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the re-drive never waited for the locked row")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRedriveTwiceKeepsHistory: an event re-driven, failing again and
// re-driven again keeps every attempt and both re-drives, and its attempt
// numbers keep rising.
func TestRedriveTwiceKeepsHistory(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	row := operatortest.Add(t, db.Pool, operatortest.Event{User: "usr_1", Status: "dead", Attempts: 3, LastError: "first failure", HTTPStatus: 500})
	if _, err := operator.Redrive(ctx, db.Pool, operator.Filter{IDs: []int64{row.ID}}, "alice", "try 1", false); err != nil {
		t.Fatal(err)
	}
	// The relay tries twice more (attempts 4 and 5) and gives up again.
	for n := 4; n <= 5; n++ {
		operatortest.AddAttempt(t, db.Pool, row.ID, operatortest.Attempt{Number: n, RelayID: "relay-b", Error: "second failure", HTTPStatus: 503, StartedAgo: time.Duration(10-n) * time.Second})
	}
	if _, err := db.Pool.Exec(ctx, `UPDATE outbox SET status = 'dead', attempts = 5, last_error = 'second failure', last_http_status = 503 WHERE id = $1`, row.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := operator.Redrive(ctx, db.Pool, operator.Filter{IDs: []int64{row.ID}}, "bob", "try 2", false); err != nil {
		t.Fatal(err)
	}
	in, err := operator.Inspect(ctx, db.Pool, fmt.Sprint(row.ID))
	if err != nil {
		t.Fatal(err)
	}
	if in.Event.Status != "pending" || in.Event.Attempts != 5 || in.Event.AttemptsBase != 5 || len(in.Attempts) != 5 {
		t.Fatalf("event %+v with %d attempts", in.Event, len(in.Attempts))
	}
	if len(in.Redrives) != 2 || in.Redrives[0].RedrivenBy != "alice" || in.Redrives[0].PreviousAttempts != 3 || *in.Redrives[0].PreviousLastError != "first failure" ||
		in.Redrives[1].RedrivenBy != "bob" || in.Redrives[1].PreviousAttempts != 5 || *in.Redrives[1].PreviousLastError != "second failure" {
		t.Fatalf("redrives %+v", in.Redrives)
	}
}

// TestRedriveByEventLeadAndCreatedRange: the filters the console offers
// (event name, lead id, a created_at range) select exactly the dead events
// they name, alone and combined, and a contradictory range is refused.
func TestRedriveByEventLeadAndCreatedRange(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	m := newMix(t, db.Pool)
	if _, err := db.Pool.Exec(ctx, `UPDATE outbox SET event_name = 'Lead Updated' WHERE id = ANY($1)`, []int64{m.d3.ID, m.p1.ID}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	cases := []struct {
		name string
		f    operator.Filter
		want []int64
	}{
		{"event name", operator.Filter{EventName: "Lead Updated"}, []int64{m.d3.ID}},
		{"lead id", operator.Filter{LeadID: m.d2.LeadID}, []int64{m.d2.ID}},
		{"lead id of a live event", operator.Filter{LeadID: m.p1.LeadID}, nil},
		{"created in the last hour", operator.Filter{CreatedFrom: now.Add(-time.Hour)}, []int64{m.d2.ID, m.d3.ID}},
		{"created before an hour ago", operator.Filter{CreatedBefore: now.Add(-time.Hour)}, []int64{m.d1.ID, m.d4.ID}},
		{"created between 4h and 1h ago", operator.Filter{CreatedFrom: now.Add(-4 * time.Hour), CreatedBefore: now.Add(-time.Hour)}, []int64{m.d1.ID}},
		{"event name and created range", operator.Filter{EventName: "Lead Created", CreatedFrom: now.Add(-time.Hour)}, []int64{m.d2.ID}},
	}
	for _, tc := range cases {
		res, err := operator.Redrive(ctx, db.Pool, tc.f, "", "", true)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !slices.Equal(res.IDs, nonNil(tc.want)) {
			t.Errorf("%s: ids %v, want %v", tc.name, res.IDs, tc.want)
		}
	}
	for _, f := range []operator.Filter{
		{CreatedFrom: now, CreatedBefore: now.Add(-time.Hour)},
		{LeadID: -1},
	} {
		if _, err := operator.Redrive(ctx, db.Pool, f, "alice", "x", false); !errors.Is(err, operator.ErrBadFilter) {
			t.Errorf("filter %+v: error %v, want ErrBadFilter", f, err)
		}
	}
	// The real re-drive with the new filters moves what the dry run listed.
	res, err := operator.Redrive(ctx, db.Pool, operator.Filter{EventName: "Lead Updated"}, "alice", "fixed", false)
	if err != nil || !slices.Equal(res.IDs, []int64{m.d3.ID}) {
		t.Fatalf("re-drive by event name: %+v %v", res, err)
	}
}
