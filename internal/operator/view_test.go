package operator_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paragon-outbox/outbox-relay/internal/migrate"
	"github.com/paragon-outbox/outbox-relay/internal/operator"
	"github.com/paragon-outbox/outbox-relay/internal/operator/operatortest"
	"github.com/paragon-outbox/outbox-relay/internal/testdb"
)

// TestDeliveryStatusView checks every derived column of
// outbox_delivery_status for an event in each state.
func TestDeliveryStatusView(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()

	var cols []string
	rows, err := db.Pool.Query(ctx, `
		SELECT column_name::text FROM information_schema.columns
		WHERE table_name = 'outbox_delivery_status' ORDER BY ordinal_position`)
	if err != nil {
		t.Fatal(err)
	}
	if cols, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	wantCols := []string{"id", "event_id", "event_name", "user_id", "lead_id", "status", "attempts", "attempts_base",
		"last_http_status", "last_error", "created_at", "next_attempt_at", "delivered_at", "time_to_deliver",
		"lease_owner", "lease_expires_at", "redrive_count", "ordering_key"}
	if !slices.Equal(cols, wantCols) {
		t.Fatalf("view columns %v\nwant %v", cols, wantCols)
	}

	add := func(e operatortest.Event) operatortest.Row { return operatortest.Add(t, db.Pool, e) }
	pending := add(operatortest.Event{User: "usr_a", Attempts: 1, LastError: "paragon answered 503", HTTPStatus: 503, NextAttemptIn: 30 * time.Second})
	inFlight := add(operatortest.Event{User: "usr_a", Status: "in_flight", Attempts: 1, LeaseExpiresIn: time.Minute, LeaseOwner: "relay-x"})
	delivered := add(operatortest.Event{User: "usr_b", Status: "delivered", Attempts: 1, CreatedAgo: 90 * time.Second, DeliveredAgo: 30 * time.Second})
	dead := add(operatortest.Event{User: "usr_b", Status: "dead", Attempts: 4, LastError: "gave up", HTTPStatus: 500})
	redriven := add(operatortest.Event{User: "usr_c", Status: "dead", Attempts: 2, LastError: "gave up", HTTPStatus: 500})
	keyed := add(operatortest.Event{User: "usr_d"})
	if _, err := db.Pool.Exec(ctx, `UPDATE outbox SET ordering_key = 'deals:42' WHERE id = $1`, keyed.ID); err != nil {
		t.Fatal(err)
	}
	var key string
	if err := db.Pool.QueryRow(ctx, `SELECT ordering_key FROM outbox_delivery_status WHERE id = $1`, keyed.ID).Scan(&key); err != nil || key != "deals:42" {
		t.Errorf("view ordering_key %q %v, want deals:42", key, err)
	}
	for range 2 {
		if _, err := operator.Redrive(ctx, db.Pool, operator.Filter{IDs: []int64{redriven.ID}}, "alice", "", false); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Pool.Exec(ctx, `UPDATE outbox SET status = 'dead' WHERE id = $1`, redriven.ID); err != nil {
			t.Fatal(err)
		}
	}

	type viewRow struct {
		EventID, Status, UserID string
		LeadID                  int64
		Attempts, AttemptsBase  int32
		HTTP                    *int32
		LastError               *string
		NextDue, TimeToDeliver  *float64 // seconds from now / seconds
		Delivered               bool
		LeaseOwner              *string
		LeaseLeft               *float64
		Redrives                int64
	}
	get := func(id int64) viewRow {
		t.Helper()
		var v viewRow
		err := db.Pool.QueryRow(ctx, `
			SELECT event_id::text, status, user_id, lead_id, attempts, attempts_base, last_http_status, last_error,
			       extract(epoch FROM next_attempt_at - now())::float8, extract(epoch FROM time_to_deliver)::float8,
			       delivered_at IS NOT NULL, lease_owner, extract(epoch FROM lease_expires_at - now())::float8, redrive_count
			FROM outbox_delivery_status WHERE id = $1`, id).Scan(
			&v.EventID, &v.Status, &v.UserID, &v.LeadID, &v.Attempts, &v.AttemptsBase, &v.HTTP, &v.LastError,
			&v.NextDue, &v.TimeToDeliver, &v.Delivered, &v.LeaseOwner, &v.LeaseLeft, &v.Redrives)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	if v := get(pending.ID); v.Status != "pending" || v.NextDue == nil || *v.NextDue < 25 || *v.NextDue > 31 || v.TimeToDeliver != nil ||
		v.HTTP == nil || *v.HTTP != 503 || v.LastError == nil || v.LeadID != pending.LeadID || v.EventID != pending.EventID || v.UserID != "usr_a" {
		t.Errorf("pending: %+v", v)
	}
	if v := get(inFlight.ID); v.Status != "in_flight" || v.NextDue != nil || v.LeaseOwner == nil || *v.LeaseOwner != "relay-x" ||
		v.LeaseLeft == nil || *v.LeaseLeft < 50 || *v.LeaseLeft > 61 {
		t.Errorf("in flight: %+v", v)
	}
	if v := get(delivered.ID); v.Status != "delivered" || v.NextDue != nil || !v.Delivered || v.TimeToDeliver == nil ||
		*v.TimeToDeliver < 59.9 || *v.TimeToDeliver > 60.1 || v.LastError != nil || v.HTTP != nil {
		t.Errorf("delivered: %+v (time_to_deliver want 60s)", v)
	}
	if v := get(dead.ID); v.Status != "dead" || v.NextDue != nil || v.TimeToDeliver != nil || v.Attempts != 4 || v.AttemptsBase != 0 || v.Redrives != 0 {
		t.Errorf("dead: %+v", v)
	}
	if v := get(redriven.ID); v.Redrives != 2 || v.Attempts != 2 || v.AttemptsBase != 2 {
		t.Errorf("re-driven twice: %+v", v)
	}
	var n int64
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox_delivery_status`).Scan(&n); err != nil || n != 6 {
		t.Fatalf("view rows %d %v, want one per event (6)", n, err)
	}
	// Every row's key is its event's (NULL where the event has none).
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox AS o JOIN outbox_delivery_status AS v USING (id)
		WHERE v.ordering_key IS DISTINCT FROM o.ordering_key`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d view rows with another ordering_key than their event's (%v)", n, err)
	}
}

// TestOperatorMigrationDownAndUp: the migration's Down removes everything it
// added, with data present, and Up restores it.
func TestOperatorMigrationDownAndUp(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	row := operatortest.Add(t, db.Pool, operatortest.Event{User: "usr_1", Status: "dead", Attempts: 1, LastError: "x"})
	if _, err := operator.Redrive(ctx, db.Pool, operator.Filter{IDs: []int64{row.ID}}, "alice", "", false); err != nil {
		t.Fatal(err)
	}
	objects := func() (n int) {
		t.Helper()
		err := db.Pool.QueryRow(ctx, `
			SELECT (to_regclass('outbox_delivery_status') IS NOT NULL)::int + (to_regclass('outbox_redrives') IS NOT NULL)::int
			     + (to_regclass('outbox_delivered_at') IS NOT NULL)::int + (to_regclass('outbox_dead_created_at') IS NOT NULL)::int
			     + (SELECT count(*)::int FROM information_schema.columns WHERE table_name = 'outbox' AND column_name = 'attempts_base')`).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := objects(); n != 5 {
		t.Fatalf("%d of 5 operator objects after up", n)
	}
	if err := migrate.DownTo(ctx, db.Pool, 1, nil); err != nil {
		t.Fatal(err)
	}
	if n := objects(); n != 0 {
		t.Fatalf("%d operator objects left after down", n)
	}
	if _, err := migrate.Up(ctx, db.Pool, nil); err != nil {
		t.Fatal(err)
	}
	if n := objects(); n != 5 {
		t.Fatalf("%d of 5 operator objects after up again", n)
	}
	if err := migrate.Check(ctx, db.Pool); err != nil {
		t.Fatal(err)
	}
}
