package outbox_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/outbox"
	"github.com/paragon-outbox/outbox-relay/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

var ctx = context.Background()

func seed(t *testing.T, db *testdb.Database, n int) {
	t.Helper()
	_, err := db.Pool.Exec(ctx, `INSERT INTO leads (owner_id, last_name) SELECT 'usr_' || (g % 7), 'L' || g FROM generate_series(1, $1) g`, n)
	if err != nil {
		t.Fatal(err)
	}
}

// seedUsers inserts n leads owned by users Connected Users (usr_0 ...).
func seedUsers(t *testing.T, db *testdb.Database, n, users int) {
	t.Helper()
	_, err := db.Pool.Exec(ctx, `INSERT INTO leads (owner_id, last_name) SELECT 'usr_' || (g % $2), 'L' || g FROM generate_series(1, $1) g`, n, users)
	if err != nil {
		t.Fatal(err)
	}
}

type row struct {
	Status, Owner string
	Attempts      int32
}

func rowOf(t *testing.T, db *testdb.Database, id int64) row {
	t.Helper()
	var r row
	var owner *string
	if err := db.Pool.QueryRow(ctx, `SELECT status, lease_owner, attempts FROM outbox WHERE id = $1`, id).Scan(&r.Status, &owner, &r.Attempts); err != nil {
		t.Fatal(err)
	}
	if owner != nil {
		r.Owner = *owner
	}
	return r
}

// TestConcurrentClaimsTakeAtMostLimitAndNeverTheSameRow: eight claimers race
// over 2,000 rows; every claim returns at most its limit, no row is claimed
// twice, and each claimed row is in_flight under its claimer's lease with
// one attempt counted (a claim that only locked a row would leave it pending).
func TestConcurrentClaimsTakeAtMostLimitAndNeverTheSameRow(t *testing.T) {
	db := testdb.New(t)
	seed(t, db, 2000)
	s := outbox.New(db.Pool)
	const limit = 37
	var mu sync.Mutex
	owner := map[int64]string{}
	var wg sync.WaitGroup
	// Only the first few errors are kept; a claimer never blocks reporting one.
	errs := make(chan error, 64)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			me := fmt.Sprintf("claimer-%d", w)
			for {
				evs, err := s.Claim(ctx, me, limit, time.Minute)
				if err != nil {
					report(err)
					return
				}
				if len(evs) > limit {
					report(fmt.Errorf("claim returned %d rows, limit %d", len(evs), limit))
					return
				}
				if len(evs) == 0 {
					return
				}
				mu.Lock()
				for _, e := range evs {
					if prev, dup := owner[e.ID]; dup {
						report(fmt.Errorf("row %d claimed by %s and %s", e.ID, prev, me))
					}
					owner[e.ID] = me
					if e.Attempt != 1 || e.ID < 1<<32 {
						report(fmt.Errorf("row %d: attempt %d", e.ID, e.Attempt))
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(owner) != 2000 {
		t.Fatalf("claimed %d distinct rows, want 2000", len(owner))
	}
	rows, err := db.Pool.Query(ctx, `SELECT id, status, lease_owner, attempts, lease_expires_at > now() FROM outbox`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var status, lo string
		var attempts int32
		var leased bool
		if err := rows.Scan(&id, &status, &lo, &attempts, &leased); err != nil {
			t.Fatal(err)
		}
		if status != outbox.StatusInFlight || lo != owner[id] || attempts != 1 || !leased {
			t.Fatalf("row %d: status=%s owner=%s (claimed by %s) attempts=%d leased=%v", id, status, lo, owner[id], attempts, leased)
		}
	}
}

func claimOne(t *testing.T, s *outbox.Store, owner string, lease time.Duration) outbox.Event {
	t.Helper()
	evs, err := s.Claim(ctx, owner, 1, lease)
	if err != nil || len(evs) != 1 {
		t.Fatalf("claim: %v (%d rows)", err, len(evs))
	}
	return evs[0]
}

func delivered(e outbox.Event) outbox.Result {
	now := time.Now()
	return outbox.Result{ID: e.ID, Attempt: e.Attempt, Outcome: outbox.OutcomeDelivered, HTTPStatus: 201, Started: now, Finished: now}
}

// TestRescueRacingCompletionNeverRedelivers: rows whose lease has just
// expired are completed by their relay while rescuers run concurrently.
// Whatever the interleaving, every row ends delivered: a rescuer must never
// put a completed row back to pending (which would send it again).
func TestRescueRacingCompletionNeverRedelivers(t *testing.T) {
	db := testdb.New(t)
	s := outbox.New(db.Pool)
	// Ten rounds: each claims fresh rows with leases that expire at once,
	// then completes them in batches while rescues run, so that a
	// completion lands inside a rescue statement (between its read of the
	// expired rows and its update) many times.
	for round := range 10 {
		seed(t, db, 100)
		evs, err := s.Claim(ctx, "slow-relay", 100, time.Millisecond)
		if err != nil || len(evs) != 100 {
			t.Fatalf("round %d: claim: %v %d", round, err, len(evs))
		}
		time.Sleep(5 * time.Millisecond) // leases expire (database clock)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := 0; i < len(evs); i += 10 {
				batch := make([]outbox.Result, 0, 10)
				for _, e := range evs[i : i+10] {
					batch = append(batch, delivered(e))
				}
				if _, err := s.Record(ctx, "slow-relay", batch); err != nil {
					t.Error(err)
				}
			}
		}()
		go func() {
			defer wg.Done()
			for range 10 {
				if _, err := s.RescueExpired(ctx, 7, 10); err != nil {
					t.Error(err)
				}
			}
		}()
		wg.Wait()
	}
	var notDelivered int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE status <> 'delivered'`).Scan(&notDelivered); err != nil {
		t.Fatal(err)
	}
	if notDelivered != 0 {
		t.Fatalf("%d completed rows were reset by the rescuer and would be sent again", notDelivered)
	}
	// And a rescue after completion touches nothing.
	ids, err := s.RescueExpired(ctx, 1000, 25)
	if err != nil || len(ids) != 0 {
		t.Fatalf("rescue after completion moved %v (%v)", ids, err)
	}
}

// TestNaiveRescuerIsCaught shows what the test above guards against: a
// rescuer that reads expired rows and then resets them by id alone undoes a
// completion that happened in between. (This is the known failure; our
// rescuer is one compare-and-set statement.)
func TestNaiveRescuerIsCaught(t *testing.T) {
	db := testdb.New(t)
	seed(t, db, 1)
	s := outbox.New(db.Pool)
	e := claimOne(t, s, "slow-relay", time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	var ids []int64
	if err := db.Pool.QueryRow(ctx, `SELECT array_agg(id) FROM outbox WHERE status = 'in_flight' AND lease_expires_at < now()`).Scan(&ids); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Record(ctx, "slow-relay", []outbox.Result{delivered(e)}); err != nil { // completion lands in between
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `UPDATE outbox SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL WHERE id = ANY($1)`, ids); err != nil {
		t.Fatal(err)
	}
	if got := rowOf(t, db, e.ID); got.Status != "pending" {
		t.Fatalf("naive rescuer left %s; the race this suite tests for did not happen", got.Status)
	}
}

// TestLateResultAfterRescue: the relay's lease expired and the row was
// rescued, then the relay's success arrives. If nobody claimed it again the
// success still counts (no re-send); if another relay already claimed it,
// the late result moves nothing and is logged as an attempt.
func TestLateResultAfterRescue(t *testing.T) {
	db := testdb.New(t)
	seed(t, db, 2)
	s := outbox.New(db.Pool)
	a := claimOne(t, s, "relay-a", time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	if ids, err := s.RescueExpired(ctx, 10, 25); err != nil || len(ids) != 1 {
		t.Fatalf("rescue: %v %v", ids, err)
	}
	var interrupted string
	if err := db.Pool.QueryRow(ctx, `SELECT error FROM outbox_attempts WHERE outbox_id = $1 AND attempt = 1`, a.ID).Scan(&interrupted); err != nil {
		t.Fatalf("rescue logged no interrupted attempt: %v", err)
	}
	moved, err := s.Record(ctx, "relay-a", []outbox.Result{delivered(a)})
	if err != nil || len(moved) != 1 {
		t.Fatalf("late success after rescue: moved %v (%v), want the row", moved, err)
	}
	if got := rowOf(t, db, a.ID); got.Status != "delivered" || got.Attempts != 1 {
		t.Fatalf("row %+v, want delivered after 1 attempt", got)
	}
	var status *int32
	if err := db.Pool.QueryRow(ctx, `SELECT http_status FROM outbox_attempts WHERE outbox_id = $1 AND attempt = 1`, a.ID).Scan(&status); err != nil || status == nil || *status != 201 {
		t.Fatalf("attempt 1 should now show the real outcome 201, got %v (%v)", status, err)
	}

	// Second row: rescued, then claimed by relay-b before relay-a reports.
	a2 := claimOne(t, s, "relay-a", time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	if _, err := s.RescueExpired(ctx, 10, 25); err != nil {
		t.Fatal(err)
	}
	b := claimOne(t, s, "relay-b", time.Minute)
	if b.ID != a2.ID || b.Attempt != 2 {
		t.Fatalf("relay-b claimed %d attempt %d", b.ID, b.Attempt)
	}
	moved, err = s.Record(ctx, "relay-a", []outbox.Result{delivered(a2)})
	if err != nil || len(moved) != 0 {
		t.Fatalf("late result moved %v (%v); the row belongs to relay-b now", moved, err)
	}
	if got := rowOf(t, db, b.ID); got.Status != "in_flight" || got.Owner != "relay-b" {
		t.Fatalf("row %+v, want still in_flight under relay-b", got)
	}
	if moved, err := s.Record(ctx, "relay-b", []outbox.Result{delivered(b)}); err != nil || len(moved) != 1 {
		t.Fatalf("relay-b completion: %v %v", moved, err)
	}
}

// TestTerminalStatesStayTerminal: neither a stray result nor a rescue moves
// a delivered or dead row.
func TestTerminalStatesStayTerminal(t *testing.T) {
	db := testdb.New(t)
	seed(t, db, 2)
	s := outbox.New(db.Pool)
	d := claimOne(t, s, "r", time.Minute)
	x := claimOne(t, s, "r", time.Minute)
	now := time.Now()
	if _, err := s.Record(ctx, "r", []outbox.Result{delivered(d),
		{ID: x.ID, Attempt: x.Attempt, Outcome: outbox.OutcomeDead, HTTPStatus: 400, Error: "bad", Started: now, Finished: now}}); err != nil {
		t.Fatal(err)
	}
	retry := func(e outbox.Event) outbox.Result {
		return outbox.Result{ID: e.ID, Attempt: e.Attempt, Outcome: outbox.OutcomeRetry, HTTPStatus: 500, Error: "late", Started: now, Finished: now}
	}
	if moved, err := s.Record(ctx, "r", []outbox.Result{retry(d), retry(x)}); err != nil || len(moved) != 0 {
		t.Fatalf("stray results moved %v (%v)", moved, err)
	}
	if got := rowOf(t, db, d.ID); got.Status != "delivered" {
		t.Fatalf("delivered row is now %s", got.Status)
	}
	if got := rowOf(t, db, x.ID); got.Status != "dead" {
		t.Fatalf("dead row is now %s", got.Status)
	}
	if _, err := s.Release(ctx, "r", []outbox.Held{{ID: d.ID, Attempt: d.Attempt}}); err != nil {
		t.Fatal(err)
	}
	if got := rowOf(t, db, d.ID); got.Status != "delivered" {
		t.Fatalf("release moved a delivered row to %s", got.Status)
	}
}

// TestReleaseGivesBackWithoutSpendingAnAttempt, and only for the holder.
func TestReleaseGivesBackWithoutSpendingAnAttempt(t *testing.T) {
	db := testdb.New(t)
	seed(t, db, 1)
	s := outbox.New(db.Pool)
	e := claimOne(t, s, "mine", time.Minute)
	if n, err := s.Release(ctx, "someone-else", []outbox.Held{{ID: e.ID, Attempt: e.Attempt}}); err != nil || n != 0 {
		t.Fatalf("another relay released my row: %d %v", n, err)
	}
	if n, err := s.Release(ctx, "mine", []outbox.Held{{ID: e.ID, Attempt: e.Attempt}}); err != nil || n != 1 {
		t.Fatalf("release: %d %v", n, err)
	}
	if got := rowOf(t, db, e.ID); got.Status != "pending" || got.Attempts != 0 || got.Owner != "" {
		t.Fatalf("released row %+v, want pending, 0 attempts, no lease", got)
	}
	again := claimOne(t, s, "other", time.Minute)
	if again.ID != e.ID || again.Attempt != 1 {
		t.Fatalf("reclaim got %d attempt %d, want the same row at attempt 1", again.ID, again.Attempt)
	}
}

// TestExtendLeasesOnlyForTheHolder: a live relay keeps its lease; it cannot
// extend someone else's.
func TestExtendLeasesOnlyForTheHolder(t *testing.T) {
	db := testdb.New(t)
	seed(t, db, 1)
	s := outbox.New(db.Pool)
	e := claimOne(t, s, "mine", 50*time.Millisecond)
	if n, err := s.ExtendLeases(ctx, "thief", []int64{e.ID}, time.Hour); err != nil || n != 0 {
		t.Fatalf("thief extended: %d %v", n, err)
	}
	if n, err := s.ExtendLeases(ctx, "mine", []int64{e.ID}, time.Hour); err != nil || n != 1 {
		t.Fatalf("extend: %d %v", n, err)
	}
	time.Sleep(100 * time.Millisecond) // past the original lease
	if ids, err := s.RescueExpired(ctx, 10, 25); err != nil || len(ids) != 0 {
		t.Fatalf("rescued an extended lease: %v %v", ids, err)
	}
}

// TestRescueGivesUpAfterMaxAttempts: an event whose every relay dies while
// sending it must not loop forever.
func TestRescueGivesUpAfterMaxAttempts(t *testing.T) {
	db := testdb.New(t)
	seed(t, db, 1)
	s := outbox.New(db.Pool)
	for i := 1; i <= 3; i++ {
		claimOne(t, s, fmt.Sprint("dies-", i), time.Millisecond)
		time.Sleep(5 * time.Millisecond)
		if _, err := s.RescueExpired(ctx, 10, 3); err != nil {
			t.Fatal(err)
		}
	}
	var status, lastErr string
	var logged int
	if err := db.Pool.QueryRow(ctx, `SELECT status, last_error, (SELECT count(*) FROM outbox_attempts) FROM outbox`).Scan(&status, &lastErr, &logged); err != nil {
		t.Fatal(err)
	}
	if status != "dead" || logged != 3 {
		t.Fatalf("status %s after 3 interrupted attempts (%d logged): %s", status, logged, lastErr)
	}
}

// TestClaimIsFairAcrossConnectedUsers: one user's big, older backlog does
// not starve the others. Oldest-first claiming would need 50 claims of 100
// before the first small user's event; fair claiming serves every small user
// within the first few claims while still filling each batch.
func TestClaimIsFairAcrossConnectedUsers(t *testing.T) {
	db := testdb.New(t)
	if _, err := db.Pool.Exec(ctx, `
		INSERT INTO leads (owner_id, last_name, created_at) SELECT 'usr_big', 'B' || g, now() - interval '1 day' FROM generate_series(1, 5000) g;
		INSERT INTO leads (owner_id, last_name) SELECT 'usr_small_' || lpad((g % 50)::text, 2, '0'), 'S' || g FROM generate_series(1, 500) g;
		UPDATE outbox SET next_attempt_at = now() - interval '1 day' WHERE user_id = 'usr_big';`); err != nil {
		t.Fatal(err)
	}
	s := outbox.New(db.Pool)
	smallLeft := 500
	for claim := 1; smallLeft > 0; claim++ {
		if claim > 10 {
			t.Fatalf("after 10 claims %d small users' events are still waiting behind the big backlog", smallLeft)
		}
		evs, err := s.Claim(ctx, "r", 100, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 100 {
			t.Fatalf("claim %d returned %d rows; batches must stay full", claim, len(evs))
		}
		for _, e := range evs {
			if e.UserID != "usr_big" {
				smallLeft--
			}
		}
	}
}

// TestRescueGaveUpMessageCountsInWords: the last_error of an event the
// rescuer gives up on names its attempts in correct English: "after 1
// attempt", "after 2 attempts".
func TestRescueGaveUpMessageCountsInWords(t *testing.T) {
	for _, tc := range []struct {
		max  int
		want string
	}{{1, "gave up after 1 attempt: "}, {2, "gave up after 2 attempts: "}} {
		db := testdb.New(t)
		seed(t, db, 1)
		s := outbox.New(db.Pool)
		for i := 1; i <= tc.max; i++ {
			claimOne(t, s, fmt.Sprint("dies-", i), time.Millisecond)
			time.Sleep(5 * time.Millisecond)
			if _, err := s.RescueExpired(ctx, 10, tc.max); err != nil {
				t.Fatal(err)
			}
		}
		var status, lastErr string
		if err := db.Pool.QueryRow(ctx, `SELECT status, last_error FROM outbox`).Scan(&status, &lastErr); err != nil {
			t.Fatal(err)
		}
		if status != "dead" || !strings.HasPrefix(lastErr, tc.want) {
			t.Errorf("max %d: status %s, last_error %q, want dead and %q...", tc.max, status, lastErr, tc.want)
		}
	}
}
