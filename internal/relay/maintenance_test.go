package relay_test

import (
	"context"
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/paragon-outbox/outbox-relay/internal/operator/operatortest"
	"github.com/paragon-outbox/outbox-relay/internal/outbox"
	"github.com/paragon-outbox/outbox-relay/internal/relay"
	"github.com/paragon-outbox/outbox-relay/internal/testdb"
)

// waitFor polls cond until it holds, failing the test after a minute (a
// bound for a hung service, not a performance threshold).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func leaseLeft(t *testing.T, db *testdb.Database, id int64) time.Duration {
	t.Helper()
	var ms float64
	if err := db.Pool.QueryRow(context.Background(),
		`SELECT extract(epoch FROM lease_expires_at - now()) * 1000 FROM outbox WHERE id = $1`, id).Scan(&ms); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ms) * time.Millisecond
}

// TestLeaseExtenderAlone: the extender renews the leases of the rows its
// relay holds, and only those: not rows it does not list, not rows of
// another relay even if listed.
func TestLeaseExtenderAlone(t *testing.T) {
	db := testdb.New(t)
	add := func(owner string) int64 {
		return operatortest.Add(t, db.Pool, operatortest.Event{User: "usr_a", Status: "in_flight", Attempts: 1,
			LeaseExpiresIn: time.Minute, LeaseOwner: owner}).ID
	}
	held, notListed, foreign := add("relay-x"), add("relay-x"), add("relay-other")
	m := relay.NewMetrics(nil)
	s := relay.NewLeaseExtender(outbox.New(db.Pool), relay.LeaseExtenderConfig{
		RelayID: "relay-x", Lease: time.Hour, Interval: 10 * time.Millisecond, Metrics: m,
		Held: func() []int64 { return []int64{held, foreign} },
	}, nil)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the held row's lease is extended to an hour", func() bool { return leaseLeft(t, db, held) > 50*time.Minute })
	s.Stop()
	s.Stop() // safe twice
	if d := leaseLeft(t, db, notListed); d > 2*time.Minute {
		t.Errorf("a row the relay did not list was extended (%s left)", d)
	}
	if d := leaseLeft(t, db, foreign); d > 2*time.Minute {
		t.Errorf("another relay's row was extended (%s left)", d)
	}
	if n := promtest.ToFloat64(m.DBErrors.WithLabelValues("extend_leases")); n != 0 {
		t.Errorf("%v database errors", n)
	}
}

// TestRescuerAlone: expired leases of any relay become claimable again, in
// batches until a batch comes back short; live leases are left alone.
func TestRescuerAlone(t *testing.T) {
	db := testdb.New(t)
	var expired []int64
	for _, owner := range []string{"relay-dead-1", "relay-dead-1", "relay-dead-2", "relay-dead-2", "relay-dead-3"} {
		expired = append(expired, operatortest.Add(t, db.Pool, operatortest.Event{User: "usr_a", Status: "in_flight", Attempts: 1,
			LeaseExpiresIn: -time.Minute, LeaseOwner: owner}).ID)
	}
	live := operatortest.Add(t, db.Pool, operatortest.Event{User: "usr_a", Status: "in_flight", Attempts: 1,
		LeaseExpiresIn: time.Hour, LeaseOwner: "relay-live"}).ID
	m := relay.NewMetrics(nil)
	s := relay.NewRescuer(outbox.New(db.Pool), relay.RescuerConfig{Interval: 10 * time.Millisecond, BatchSize: 2, MaxAttempts: 10, Metrics: m}, nil)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every expired lease is rescued", func() bool { return s.Rescued() >= int64(len(expired)) })
	s.Stop()
	if got := s.Rescued(); got != int64(len(expired)) {
		t.Fatalf("rescued %d rows, want %d", got, len(expired))
	}
	if got := promtest.ToFloat64(m.Rescued); got != float64(len(expired)) {
		t.Errorf("outbox_relay_rescued_total = %v, want %d", got, len(expired))
	}
	var pending int
	if err := db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM outbox WHERE id = ANY($1) AND status = 'pending'`, expired).Scan(&pending); err != nil {
		t.Fatal(err)
	}
	if pending != len(expired) {
		t.Errorf("%d of %d rescued rows are pending", pending, len(expired))
	}
	var status string
	if err := db.Pool.QueryRow(context.Background(), `SELECT status FROM outbox WHERE id = $1`, live).Scan(&status); err != nil {
		t.Fatal(err)
	}
	if status != "in_flight" {
		t.Errorf("a live lease was rescued: status %s", status)
	}
}

// TestGaugesAlone: the backlog gauges are read at start.
func TestGaugesAlone(t *testing.T) {
	db := testdb.New(t)
	for status, n := range map[string]int{"pending": 3, "in_flight": 2, "dead": 1, "delivered": 4} {
		for range n {
			e := operatortest.Event{User: "usr_a", Status: status, Attempts: 1, CreatedAgo: time.Hour, LeaseExpiresIn: time.Hour, DeliveredAgo: time.Minute}
			operatortest.Add(t, db.Pool, e)
		}
	}
	m := relay.NewMetrics(nil)
	s := relay.NewGauges(outbox.New(db.Pool), relay.GaugesConfig{Interval: time.Hour, Metrics: m}, nil)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	waitFor(t, "the gauges are read", func() bool { return promtest.ToFloat64(m.Pending) == 3 })
	if in, dead := promtest.ToFloat64(m.InFlight), promtest.ToFloat64(m.Dead); in != 2 || dead != 1 {
		t.Errorf("in flight %v, dead %v; want 2 and 1", in, dead)
	}
	if age := promtest.ToFloat64(m.OldestPendingSeconds); age < 3000 {
		t.Errorf("oldest pending age %vs, want about an hour", age)
	}
}

// TestPurgerAlone: retention deletes old delivered and dead events in small
// batches and keeps recent ones and everything undelivered; a retention of
// 0 keeps that kind.
func TestPurgerAlone(t *testing.T) {
	db := testdb.New(t)
	add := func(e operatortest.Event) int64 { e.User = "usr_a"; return operatortest.Add(t, db.Pool, e).ID }
	day := 24 * time.Hour
	for range 3 {
		add(operatortest.Event{Status: "delivered", Attempts: 1, CreatedAgo: 11 * day, DeliveredAgo: 10 * day})
	}
	oldDead := add(operatortest.Event{Status: "dead", Attempts: 3, LastError: "HTTP 500", CreatedAgo: 40 * day})
	keep := []int64{
		add(operatortest.Event{Status: "delivered", Attempts: 1, DeliveredAgo: time.Minute}),
		add(operatortest.Event{Status: "dead", Attempts: 3, LastError: "HTTP 500", CreatedAgo: day}),
		add(operatortest.Event{Status: "pending", CreatedAgo: 100 * day}),
		add(operatortest.Event{Status: "in_flight", Attempts: 1, CreatedAgo: 100 * day, LeaseExpiresIn: time.Hour}),
	}
	remaining := func() map[int64]bool {
		rows, err := db.Pool.Query(context.Background(), `SELECT id FROM outbox`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		ids := map[int64]bool{}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			ids[id] = true
		}
		return ids
	}

	// Dead events kept (retention 0): only the old delivered ones go.
	s := relay.NewPurger(db.Pool, relay.PurgerConfig{RetainDelivered: 7 * day, Interval: 10 * time.Millisecond, BatchSize: 2}, nil)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "old delivered events are purged", func() bool { return len(remaining()) == len(keep)+1 })
	s.Stop()
	if !remaining()[oldDead] {
		t.Fatal("a dead event was purged with RetainDead 0")
	}

	s = relay.NewPurger(db.Pool, relay.PurgerConfig{RetainDelivered: 7 * day, RetainDead: 30 * day, Interval: 10 * time.Millisecond, BatchSize: 2}, nil)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the old dead event is purged", func() bool { return !remaining()[oldDead] })
	s.Stop()
	left := remaining()
	for _, id := range keep {
		if !left[id] {
			t.Errorf("event %d was purged; it is recent or undelivered", id)
		}
	}
	var orphans int
	if err := db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM outbox_attempts WHERE outbox_id NOT IN (SELECT id FROM outbox)`).Scan(&orphans); err != nil {
		t.Fatal(err)
	}
	if orphans != 0 {
		t.Errorf("%d attempts of purged events remain", orphans)
	}
}

// TestPromoterAlone: a waiting event whose earlier event of its ordering key
// was delivered (outside the relay's record statement, which would promote
// it itself) becomes pending with the sweep; one still blocked stays waiting.
func TestPromoterAlone(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	var lead, blocked int64
	if err := db.Pool.QueryRow(ctx, `INSERT INTO leads (owner_id, last_name) VALUES ('usr_a', 'A') RETURNING id`).Scan(&lead); err != nil {
		t.Fatal(err)
	}
	if err := db.Pool.QueryRow(ctx, `INSERT INTO leads (owner_id, last_name) VALUES ('usr_b', 'B') RETURNING id`).Scan(&blocked); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `UPDATE leads SET last_name = last_name || ' updated' WHERE id IN ($1, $2)`, lead, blocked); err != nil {
		t.Fatal(err)
	}
	statusOf := func(leadID int64, name string) string {
		var s string
		if err := db.Pool.QueryRow(ctx, `SELECT status FROM outbox WHERE lead_id = $1 AND event_name = $2`, leadID, name).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	if s := statusOf(lead, "Lead Updated"); s != "waiting" {
		t.Fatalf("Lead Updated behind an undelivered Lead Created is %s, want waiting", s)
	}
	if _, err := db.Pool.Exec(ctx, `
		UPDATE outbox SET status = 'delivered', delivered_at = now(), attempts = 1
		WHERE lead_id = $1 AND event_name = 'Lead Created'`, lead); err != nil {
		t.Fatal(err)
	}
	s := relay.NewPromoter(outbox.New(db.Pool), relay.PromoterConfig{Interval: 10 * time.Millisecond, Keys: 1}, nil)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the unblocked event is promoted", func() bool { return statusOf(lead, "Lead Updated") == "pending" })
	s.Stop()
	s.Stop()
	if st := statusOf(blocked, "Lead Updated"); st != "waiting" {
		t.Fatalf("an event behind an undelivered one is %s, want waiting", st)
	}
}

// storeWithMark returns a store (no mark lag) that has claimed 5 fresh
// events, and the low-water mark that claim set.
func storeWithMark(t *testing.T, db *testdb.Database) (*outbox.Store, time.Time) {
	t.Helper()
	ctx := context.Background()
	store := outbox.New(db.Pool)
	store.MarkLag = 0
	if _, err := db.Pool.Exec(ctx, `INSERT INTO leads (owner_id, last_name) SELECT 'usr_' || (g % 3), 'L' || g FROM generate_series(1, 5) g`); err != nil {
		t.Fatal(err)
	}
	if evs, err := store.Claim(ctx, "relay", 500, time.Minute); err != nil || len(evs) != 5 {
		t.Fatalf("claim: %d rows, %v", len(evs), err)
	}
	mark := store.LowWaterMark()
	if mark.IsZero() {
		t.Fatal("no low-water mark after a claim")
	}
	return store, mark
}

// TestRecheckerAlone: a due pending row behind the store's low-water mark
// (here: one whose next_attempt_at is set back after the mark moved past it,
// as a claim of another relay that rolled back leaves it) is found by the
// rechecker, which lowers the mark, and the next claim takes it.
func TestRecheckerAlone(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	store, mark := storeWithMark(t, db)
	var behind int64
	if err := db.Pool.QueryRow(ctx, `INSERT INTO leads (owner_id, last_name) VALUES ('usr_behind', 'B') RETURNING id`).Scan(&behind); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `UPDATE outbox SET next_attempt_at = $1::timestamptz - interval '1 minute' WHERE lead_id = $2`, mark, behind); err != nil {
		t.Fatal(err)
	}
	if evs, err := store.Claim(ctx, "relay", 500, time.Minute); err != nil || len(evs) != 0 {
		t.Fatalf("claim before the re-check: %d rows, %v; want none (the row is behind the mark)", len(evs), err)
	}
	s := relay.NewRechecker(store, relay.RecheckerConfig{Interval: 10 * time.Millisecond}, nil)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	waitFor(t, "the rechecker lowers the mark", func() bool { return store.LowWaterMark().Before(mark) })
	evs, err := store.Claim(ctx, "relay", 500, time.Minute)
	if err != nil || len(evs) != 1 || evs[0].UserID != "usr_behind" {
		t.Fatalf("claim after the re-check: %d rows, %v; want the row behind the mark", len(evs), err)
	}
}

// TestRecheckerDropsTheMarkWhenTheRecheckKeepsFailing: while every re-check
// fails (here: held up by an exclusive lock past the store's statement
// timeout; in production a statement_timeout shorter than a re-check
// walking a held horizon's dead entries), the rechecker drops the mark after
// a few failures, so the next claim reads from the front instead of leaving
// rows behind the mark.
func TestRecheckerDropsTheMarkWhenTheRecheckKeepsFailing(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	store, _ := storeWithMark(t, db)
	holder, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(ctx)
	if _, err := holder.Exec(ctx, `LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	store.Timeout = 50 * time.Millisecond
	m := relay.NewMetrics(nil)
	s := relay.NewRechecker(store, relay.RecheckerConfig{Interval: 10 * time.Millisecond, Metrics: m}, nil)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	waitFor(t, "the rechecker drops the mark", func() bool { return store.LowWaterMark().IsZero() })
	if n := promtest.ToFloat64(m.DBErrors.WithLabelValues("recheck_mark")); n < 3 {
		t.Errorf("db_errors_total{op=recheck_mark} = %v, want at least 3 failures counted", n)
	}
}
