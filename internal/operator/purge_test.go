package operator_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/operator"
	"github.com/paragon-outbox/outbox-relay/internal/operator/operatortest"
	"github.com/paragon-outbox/outbox-relay/internal/testdb"
)

const day = 24 * time.Hour

// purgeMix holds events on both sides of the default ages, in every state.
type purgeMix struct {
	oldDelivered   []operatortest.Row // delivered 8 days ago: purged by default
	newDelivered   operatortest.Row   // delivered 1 day ago
	oldDead        operatortest.Row   // written 31 days ago, re-driven once, dead again
	newDead        operatortest.Row   // written 10 days ago
	oldPending     operatortest.Row   // written 60 days ago, still retrying
	oldInFlight    operatortest.Row   // written 60 days ago, lease expired
	oldDeliveredAt operatortest.Row   // written 60 days ago but delivered 2 days ago
	oldSkipped     operatortest.Row   // dead, skipped by an operator, written 31 days ago
	newSkipped     operatortest.Row   // the same, written 10 days ago
}

func newPurgeMix(t *testing.T, pool *pgxpool.Pool, oldDelivered int) purgeMix {
	t.Helper()
	add := func(e operatortest.Event) operatortest.Row { return operatortest.Add(t, pool, e) }
	var m purgeMix
	for range oldDelivered {
		m.oldDelivered = append(m.oldDelivered, add(operatortest.Event{User: "usr_a", Status: "delivered", Attempts: 2, LastError: "flaky", CreatedAgo: 9 * day, DeliveredAgo: 8 * day}))
	}
	m.newDelivered = add(operatortest.Event{User: "usr_a", Status: "delivered", Attempts: 1, CreatedAgo: 2 * day, DeliveredAgo: day})
	m.oldDead = add(operatortest.Event{User: "usr_b", Status: "dead", Attempts: 3, LastError: "rejected", HTTPStatus: 422, CreatedAgo: 31 * day})
	if _, err := operator.Redrive(context.Background(), pool, operator.Filter{IDs: []int64{m.oldDead.ID}}, "alice", "", false); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(context.Background(), `UPDATE outbox SET status = 'dead' WHERE id = $1`, m.oldDead.ID); err != nil {
		t.Fatal(err)
	}
	m.newDead = add(operatortest.Event{User: "usr_b", Status: "dead", Attempts: 1, LastError: "rejected", HTTPStatus: 400, CreatedAgo: 10 * day})
	m.oldPending = add(operatortest.Event{User: "usr_c", Status: "pending", Attempts: 7, LastError: "paragon answered 503", HTTPStatus: 503, CreatedAgo: 60 * day})
	m.oldInFlight = add(operatortest.Event{User: "usr_c", Status: "in_flight", Attempts: 2, LastError: "timeout", CreatedAgo: 60 * day, LeaseExpiresIn: -time.Hour})
	m.oldDeliveredAt = add(operatortest.Event{User: "usr_c", Status: "delivered", Attempts: 1, CreatedAgo: 60 * day, DeliveredAgo: 2 * day})
	m.oldSkipped = add(operatortest.Event{User: "usr_d", Status: "skipped", Attempts: 1, LastError: "rejected", HTTPStatus: 422, CreatedAgo: 31 * day})
	m.newSkipped = add(operatortest.Event{User: "usr_d", Status: "skipped", Attempts: 1, LastError: "rejected", HTTPStatus: 422, CreatedAgo: 10 * day})
	return m
}

// remaining returns the outbox ids left, and how many attempts and re-drive
// rows still exist in total.
func remaining(t *testing.T, pool *pgxpool.Pool) (ids []int64, attempts, redriveRows int64) {
	t.Helper()
	ctx := context.Background()
	rows, err := pool.Query(ctx, `SELECT id FROM outbox ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	ids, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM outbox_attempts), (SELECT count(*) FROM outbox_redrives)`).Scan(&attempts, &redriveRows); err != nil {
		t.Fatal(err)
	}
	return ids, attempts, redriveRows
}

func idsOf(rows ...operatortest.Row) []int64 {
	out := make([]int64, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.ID)
	}
	slices.Sort(out)
	return out
}

// TestPurgeWithDefaults: only delivered events older than 7 days (by
// delivered_at) and dead and skipped events older than 30 days (by created_at) go, in
// batches, with their attempts and re-drives; pending and in-flight events
// stay however old.
func TestPurgeWithDefaults(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	m := newPurgeMix(t, db.Pool, 23)

	delivered, dead, err := operator.Purgeable(ctx, db.Pool, 0, 0)
	if err != nil || delivered != 23 || dead != 2 {
		t.Fatalf("Purgeable = %d delivered, %d dead (skipped included), %v; want 23 and 2", delivered, dead, err)
	}
	_, attemptsBefore, _ := remaining(t, db.Pool)

	n, err := operator.Purge(ctx, db.Pool, 0, 0, 5) // 5 batches of delivered rows, the last one short
	if err != nil {
		t.Fatal(err)
	}
	if n != 25 {
		t.Fatalf("purged %d, want 25", n)
	}
	ids, attempts, redriveRows := remaining(t, db.Pool)
	want := idsOf(m.newDelivered, m.newDead, m.oldPending, m.oldInFlight, m.oldDeliveredAt, m.newSkipped)
	if !slices.Equal(ids, want) {
		t.Fatalf("left %v, want %v", ids, want)
	}
	// 23 x 2 attempts of the old delivered events, the 3 of the old dead one and the old skipped one's went with them.
	if attempts != attemptsBefore-23*2-3-1 || redriveRows != 0 {
		t.Fatalf("attempts %d (was %d), redrives %d: want the purged events' rows gone", attempts, attemptsBefore, redriveRows)
	}
	var orphans int64
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox_attempts a WHERE NOT EXISTS (SELECT 1 FROM outbox o WHERE o.id = a.outbox_id)`).Scan(&orphans); err != nil || orphans != 0 {
		t.Fatalf("orphan attempts %d %v", orphans, err)
	}

	// Nothing left to purge: a second run deletes nothing.
	if n, err := operator.Purge(ctx, db.Pool, 0, 0, 0); err != nil || n != 0 {
		t.Fatalf("second purge: %d %v", n, err)
	}
}

func TestPurgeWithShortAgesStillKeepsLiveEvents(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	m := newPurgeMix(t, db.Pool, 3)
	delivered, dead, err := operator.Purgeable(ctx, db.Pool, time.Hour, time.Hour)
	if err != nil || delivered != 5 || dead != 4 {
		t.Fatalf("Purgeable = %d, %d, %v; want 5 and 4 (2 dead, 2 skipped)", delivered, dead, err)
	}
	n, err := operator.Purge(ctx, db.Pool, time.Hour, time.Hour, 1)
	if err != nil || n != 9 {
		t.Fatalf("purged %d %v, want 9", n, err)
	}
	ids, _, _ := remaining(t, db.Pool)
	if want := idsOf(m.oldPending, m.oldInFlight); !slices.Equal(ids, want) {
		t.Fatalf("left %v, want only the pending and in-flight events %v", ids, want)
	}
}

// TestPurgeSkipsLockedRows: a row someone holds (a re-drive in progress)
// is passed over, not waited for.
func TestPurgeSkipsLockedRows(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	m := newPurgeMix(t, db.Pool, 2)
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT id FROM outbox WHERE id = $1 FOR UPDATE`, m.oldDead.ID); err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	n, err := operator.Purge(pctx, db.Pool, 0, 0, 100)
	if err != nil || n != 3 {
		t.Fatalf("purged %d %v, want the 2 old delivered events and the old skipped one", n, err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	ids, _, _ := remaining(t, db.Pool)
	if !slices.Contains(ids, m.oldDead.ID) {
		t.Fatal("the locked dead event was deleted")
	}
	if n, err := operator.Purge(ctx, db.Pool, 0, 0, 100); err != nil || n != 1 {
		t.Fatalf("purge after unlock: %d %v, want the dead event", n, err)
	}
}

func TestPurgeRefusesNegativeArguments(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	newPurgeMix(t, db.Pool, 1)
	for _, args := range [][3]int64{{-1, 0, 0}, {0, -1, 0}, {0, 0, -1}} {
		if n, err := operator.Purge(ctx, db.Pool, time.Duration(args[0]), time.Duration(args[1]), int(args[2])); err == nil || n != 0 {
			t.Errorf("Purge%v = %d, %v; want an error", args, n, err)
		}
	}
	if _, _, err := operator.Purgeable(ctx, db.Pool, -time.Hour, 0); err == nil {
		t.Error("Purgeable with a negative age: no error")
	}
	ids, _, _ := remaining(t, db.Pool)
	if len(ids) != 9 {
		t.Fatalf("rows left %d, want all 9", len(ids))
	}
}

// TestPurgeKeepsADeadHeadWhileItsKeysNextEventIsBeingWritten: a 31-day-old
// dead event heads key kr; another transaction is writing the key's next
// event with outbox_enqueue (waiting behind the dead head, not committed,
// so invisible to the purge). The purge must keep the head: deleting it
// would release the key as a skip would, with nothing recorded. After the
// writer commits, the head blocks the key and is still kept.
func TestPurgeKeepsADeadHeadWhileItsKeysNextEventIsBeingWritten(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	var head int64
	if err := db.Pool.QueryRow(ctx, `SELECT outbox_enqueue('Test Event', 'usr_k', '{}'::jsonb, 'kr')`).Scan(new(string)); err != nil {
		t.Fatal(err)
	}
	if err := db.Pool.QueryRow(ctx, `UPDATE outbox SET status = 'dead', attempts = 1, last_error = 'rejected', created_at = now() - interval '31 days'
		WHERE ordering_key = 'kr' RETURNING id`).Scan(&head); err != nil {
		t.Fatal(err)
	}
	writer, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Rollback(ctx)
	var status string
	if _, err := writer.Exec(ctx, `SELECT outbox_enqueue('Test Event', 'usr_k', '{}'::jsonb, 'kr')`); err != nil {
		t.Fatal(err)
	}
	if err := writer.QueryRow(ctx, `SELECT status FROM outbox WHERE ordering_key = 'kr' AND id > $1`, head).Scan(&status); err != nil || status != "waiting" {
		t.Fatalf("the next event of the key: %q %v, want waiting behind the dead head", status, err)
	}
	if _, err := operator.Purge(ctx, db.Pool, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := writer.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	ids, _, _ := remaining(t, db.Pool)
	if !slices.Contains(ids, head) {
		t.Fatal("the dead head was purged while its key's next event was being written: the key was released with nothing recorded")
	}
	if _, err := operator.Purge(ctx, db.Pool, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	if ids, _, _ := remaining(t, db.Pool); !slices.Contains(ids, head) {
		t.Fatal("the dead head was purged although an event waits behind it")
	}
}
