package console

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/dbsqlc"
	"github.com/paragon-outbox/outbox-relay/internal/testdb"
)

// TestListEventsFindsUnsettledEvents: the user and event-name indexes hold
// settled events only (migration 00017), so the events list filtered by
// Connected User or by event name, with no status, must still return the
// user's waiting, pending and in-flight events along with the delivered,
// dead and skipped ones, newest first, and page across the settled and
// unsettled events without losing or repeating one. Checked with the
// planner's own choice over a table of many delivered events of other users
// and again with plain index scans off, which forces the BitmapOr of the
// partial indexes (outbox_user_id_settled or outbox_event_name_settled,
// outbox_pending_user, outbox_in_flight_lease, outbox_waiting).
func TestListEventsFindsUnsettledEvents(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	// Many delivered events of other users and names: the planner sees
	// production's shape.
	exec(t, db.Pool, `INSERT INTO outbox (event_name, user_id, payload, status, attempts, delivered_at)
	  SELECT 'Lead Created', 'usr_' || (i % 500), '{}', 'delivered', 1, now() FROM generate_series(1, 20000) AS i`)
	// usr_target's events, every status, interleaved so that settled and
	// unsettled ids alternate; every other one named 'Deal Won' (a name
	// nobody else has).
	statuses := []string{"delivered", "pending", "dead", "in_flight", "waiting", "skipped", "delivered", "pending",
		"in_flight", "dead", "waiting", "delivered", "pending", "skipped", "in_flight", "delivered"}
	var want, wantWon []int64
	for i, st := range statuses {
		name := "Lead Updated"
		if i%2 == 0 {
			name = "Deal Won"
		}
		var id int64
		err := db.Pool.QueryRow(ctx, `INSERT INTO outbox (event_name, user_id, ordering_key, payload, status, attempts,
		      delivered_at, lease_owner, lease_expires_at)
		  VALUES ($1, 'usr_target', 'deal:' || $3::int, '{}', $2::text, 0,
		      CASE WHEN $2::text = 'delivered' THEN now() END,
		      CASE WHEN $2::text = 'in_flight' THEN 'relay-a' END,
		      CASE WHEN $2::text = 'in_flight' THEN now() + interval '1 minute' END)
		  RETURNING id`, name, st, i).Scan(&id)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
		if name == "Deal Won" {
			wantWon = append(wantWon, id)
		}
		// Other users' events in between, in the same statuses.
		exec(t, db.Pool, `INSERT INTO outbox (event_name, user_id, ordering_key, payload, status, delivered_at, lease_owner, lease_expires_at)
		  VALUES ('Lead Updated', 'usr_other', 'other:' || $2::int, '{}', $1::text,
		      CASE WHEN $1::text = 'delivered' THEN now() END,
		      CASE WHEN $1::text = 'in_flight' THEN 'relay-a' END,
		      CASE WHEN $1::text = 'in_flight' THEN now() + interval '1 minute' END)`, st, i)
	}
	exec(t, db.Pool, `ANALYZE outbox`)
	slices.Reverse(want)
	slices.Reverse(wantWon)

	bitmapOnly := func() *pgxpool.Pool {
		cfg, err := pgxpool.ParseConfig(db.URL)
		if err != nil {
			t.Fatal(err)
		}
		cfg.ConnConfig.RuntimeParams["enable_indexscan"] = "off"
		cfg.ConnConfig.RuntimeParams["enable_seqscan"] = "off"
		p, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		return p
	}()
	for _, pc := range []struct {
		name string
		pool *pgxpool.Pool
	}{{"planner's choice", db.Pool}, {"bitmap scans only", bitmapOnly}} {
		st := newStore(pc.pool)
		if pc.pool == bitmapOnly {
			// The forced plan is the one this pool is here for.
			rec := &recorder{}
			sql, args := rec.capture(t, "ConsoleListEvents", func() {
				_, _ = store{q: dbsqlc.New(unnamed{rec})}.listEvents(ctx, eventFilter{UserID: "usr_target"}, 4)
			})
			var plan string
			if err := pc.pool.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+sql, args...).Scan(&plan); err != nil {
				t.Fatal(err)
			}
			for _, ix := range []string{"BitmapOr", "outbox_user_id_settled", "outbox_pending_user", "outbox_in_flight_lease", "outbox_waiting"} {
				if !strings.Contains(plan, ix) {
					t.Errorf("bitmap scans only: the plan has no %s:\n%s", ix, compact(plan))
				}
			}
		}
		for _, tc := range []struct {
			desc string
			f    eventFilter
			want []int64
		}{
			{"by user", eventFilter{UserID: "usr_target"}, want},
			{"by event name", eventFilter{EventName: "Deal Won"}, wantWon},
			{"by user and event name", eventFilter{UserID: "usr_target", EventName: "Deal Won"}, wantWon},
		} {
			for _, size := range []int{3, 4, 100} {
				var got []int64
				f := tc.f
				for page := 0; page < 20; page++ {
					rows, err := st.listEvents(ctx, f, size)
					if err != nil {
						t.Fatal(err)
					}
					for _, r := range rows {
						got = append(got, r.ID)
					}
					if len(rows) < size {
						break
					}
					f.Before = rows[len(rows)-1].ID
				}
				if !slices.Equal(got, tc.want) {
					t.Errorf("%s, %s, pages of %d: got %v, want newest first %v", pc.name, tc.desc, size, got, tc.want)
				}
			}
		}
		// Every status of the user is listed: the test covers what it says.
		rows, err := st.listEvents(ctx, eventFilter{UserID: "usr_target"}, 100)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, r := range rows {
			seen[r.Status] = true
		}
		if len(seen) != 6 {
			t.Errorf("%s: statuses listed %v, want all six", pc.name, fmt.Sprint(seen))
		}
	}
}
