package outbox_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paragon-outbox/outbox-relay/internal/dbsqlc"
	"github.com/paragon-outbox/outbox-relay/internal/outbox"
	"github.com/paragon-outbox/outbox-relay/internal/testdb"
)

// claimBuffers runs the claim (in a transaction rolled back, so nothing is
// claimed) under EXPLAIN (ANALYZE, BUFFERS) with low-water mark mark (nil:
// none) and returns the shared buffers it touched: the claim's work.
func claimBuffers(t *testing.T, db *testdb.Database, mark *time.Time) int64 {
	t.Helper()
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	var plan []struct {
		Plan struct {
			Hit  int64 `json:"Shared Hit Blocks"`
			Read int64 `json:"Shared Read Blocks"`
		} `json:"Plan"`
	}
	var raw []byte
	err = tx.QueryRow(ctx, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "+dbsqlc.Claim,
		claimArgs(dbsqlc.ClaimParams{RelayID: "probe", LeaseMs: 60_000, LowWater: mark, MaxUsers: 100, PerUser: 10, MaxRows: 500})...).Scan(&raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &plan); err != nil || len(plan) == 0 {
		t.Fatalf("EXPLAIN output: %v %s", err, raw)
	}
	return plan[0].Plan.Hit + plan[0].Plan.Read
}

// TestClaimWorkStaysFlatWhileASnapshotIsHeld: while a REPEATABLE READ
// transaction holds the xmin horizon, every delivered row leaves dead
// entries in the pending indexes that nothing may remove. The claim with
// the low-water mark does the same work after 1,000 and after 20,000 such
// rows of 200 Connected Users; the claim without it (side by side, same database) grows with them.
func TestClaimWorkStaysFlatWhileASnapshotIsHeld(t *testing.T) {
	db := testdb.New(t)
	holder, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	if _, err := holder.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ"); err != nil {
		t.Fatal(err)
	}
	if _, err := holder.Exec(ctx, "SELECT count(*) FROM outbox"); err != nil {
		t.Fatal(err)
	}
	s := outbox.New(db.Pool)
	s.RecheckInterval = time.Hour // the mark in use throughout
	s.MarkLag = 0                 // the rows are delivered within a second here
	drain := func() {
		for {
			evs, err := s.Claim(ctx, "relay", 500, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) == 0 {
				return
			}
			res := make([]outbox.Result, len(evs))
			for i, e := range evs {
				res[i] = delivered(e)
			}
			if _, err := s.Record(ctx, "relay", res); err != nil {
				t.Fatal(err)
			}
		}
	}
	// 200 Connected Users, as in the bench: each user's range of
	// outbox_pending_user collects dead entries, which a fair pass's skip
	// scan would walk (the claim skips that pass when the due rows fit in
	// one batch, as they do in the steady state measured here).
	deliver := func(n int) {
		for done := 0; done < n; done += 500 {
			seedUsers(t, db, 500, 200)
			drain()
		}
	}
	measure := func() (withMark, without int64) {
		seedUsers(t, db, 50, 200) // a few pending rows to claim
		m := s.LowWaterMark()
		if m.IsZero() {
			t.Fatal("no low-water mark after claims")
		}
		withMark, without = claimBuffers(t, db, &m), claimBuffers(t, db, nil)
		drain() // those 50 too, so that each measure claims the same rows
		return withMark, without
	}
	deliver(1000)
	with1, without1 := measure()
	deliver(19000)
	with8, without8 := measure()
	t.Logf("claim buffers after 1,000 / 20,000 delivered rows under a held snapshot: with mark %d / %d, without %d / %d", with1, with8, without1, without8)
	if float64(with8) > 1.2*float64(with1) {
		t.Errorf("claim work with the low-water mark grew with dead index entries: %d -> %d buffers", with1, with8)
	}
	if float64(without8) < 2*float64(without1) {
		t.Errorf("claim without the mark did not grow (%d -> %d buffers): the test does not hold a snapshot as it should", without1, without8)
	}
}

// TestNothingIsSkippedBehindTheMark: a lead whose transaction began before
// the mark moved past its next_attempt_at, and committed after, is still
// claimed once RecheckMark (the relay's Rechecker, every RecheckInterval)
// has lowered the mark to it; so is a row released after the mark moved on.
func TestNothingIsSkippedBehindTheMark(t *testing.T) {
	db := testdb.New(t)
	s := outbox.New(db.Pool)
	s.MarkLag = 0

	late, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := late.Exec(ctx, `INSERT INTO leads (owner_id, last_name) VALUES ('usr_late', 'Late')`); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	seed(t, db, 20)
	if evs, err := s.Claim(ctx, "relay", 500, time.Minute); err != nil || len(evs) != 20 {
		t.Fatalf("claim: %d rows, %v", len(evs), err)
	}
	mark := s.LowWaterMark()
	if err := late.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var due time.Time
	if err := db.Pool.QueryRow(ctx, `SELECT next_attempt_at FROM outbox WHERE user_id = 'usr_late'`).Scan(&due); err != nil {
		t.Fatal(err)
	}
	if !due.Before(mark) {
		t.Fatalf("the late row (due %s) is not behind the mark (%s): nothing tested", due, mark)
	}
	// The claims with the mark do not see it ...
	if evs, err := s.Claim(ctx, "relay", 500, time.Minute); err != nil || len(evs) != 0 {
		t.Fatalf("claim with the mark: %d rows, %v; want none (the late row is behind the mark)", len(evs), err)
	}
	// ... the re-check finds it and lowers the mark, and the next claim takes it.
	lowered, err := s.RecheckMark(ctx)
	if err != nil || !lowered {
		t.Fatalf("RecheckMark: lowered %v, %v; want the mark lowered to the late row", lowered, err)
	}
	if m := s.LowWaterMark(); !m.Equal(due) {
		t.Errorf("mark after the re-check: %s, want the late row's due time %s", m, due)
	}
	evs, err := s.Claim(ctx, "relay", 500, time.Minute)
	if err != nil || len(evs) != 1 || evs[0].UserID != "usr_late" {
		t.Fatalf("the late row was not claimed after the re-check: %d rows, %v", len(evs), err)
	}
	if lowered, err := s.RecheckMark(ctx); err != nil || lowered {
		t.Errorf("a second re-check with nothing behind the mark: lowered %v, %v", lowered, err)
	}

	// A released row keeps its old next_attempt_at; the next claim looks
	// from the front.
	seed(t, db, 3)
	evs, err = s.Claim(ctx, "relay", 500, time.Minute)
	if err != nil || len(evs) != 3 {
		t.Fatalf("claim: %d rows, %v", len(evs), err)
	}
	seed(t, db, 3)
	if _, err := s.Claim(ctx, "relay", 500, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Release(ctx, "relay", []outbox.Held{{ID: evs[0].ID, Attempt: evs[0].Attempt}}); err != nil {
		t.Fatal(err)
	}
	s.RecheckInterval = time.Hour
	again, err := s.Claim(ctx, "relay", 500, time.Minute)
	if err != nil || len(again) != 1 || again[0].ID != evs[0].ID {
		t.Fatalf("released row not claimed again at once: %d rows, %v", len(again), err)
	}
}

// TestAClaimDoesNotUndoTheRechecksLowering: a claim that is running while
// the re-check lowers the mark (here: held up by a SHARE lock on the outbox)
// must not raise the mark again when it returns, or the row the re-check
// found would wait for another re-check.
func TestAClaimDoesNotUndoTheRechecksLowering(t *testing.T) {
	db := testdb.New(t)
	s := outbox.New(db.Pool)
	s.MarkLag = 0
	seed(t, db, 5)
	if evs, err := s.Claim(ctx, "relay", 500, time.Minute); err != nil || len(evs) != 5 {
		t.Fatalf("claim: %d rows, %v", len(evs), err)
	}
	mark := s.LowWaterMark()
	var behindID int64
	var behind time.Time
	if err := db.Pool.QueryRow(ctx, `INSERT INTO leads (owner_id, last_name) VALUES ('usr_behind', 'B') RETURNING id`).Scan(&behindID); err != nil {
		t.Fatal(err)
	}
	if err := db.Pool.QueryRow(ctx, `UPDATE outbox SET next_attempt_at = $1::timestamptz - interval '1 minute' WHERE lead_id = $2 RETURNING next_attempt_at`, mark, behindID).Scan(&behind); err != nil {
		t.Fatal(err)
	}
	seed(t, db, 5) // due now: the blocked claim takes these and would raise the mark past them

	holder, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(ctx)
	if _, err := holder.Exec(ctx, `LOCK TABLE outbox IN SHARE MODE`); err != nil {
		t.Fatal(err)
	}
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		evs, err := s.Claim(ctx, "relay", 500, time.Minute)
		done <- result{len(evs), err}
	}()
	waitBlocked := time.Now().Add(time.Minute)
	for {
		var waiting int
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'outbox'::regclass`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		if time.Now().After(waitBlocked) {
			t.Fatal("the claim never waited for the lock")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if lowered, err := s.RecheckMark(ctx); err != nil || !lowered {
		t.Fatalf("RecheckMark while the claim runs: lowered %v, %v", lowered, err)
	}
	if err := holder.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.err != nil || r.n != 5 {
		t.Fatalf("the blocked claim: %d rows, %v; want the 5 due rows", r.n, r.err)
	}
	if m := s.LowWaterMark(); m.After(behind) {
		t.Fatalf("mark %s after the claim returned: raised past the row the re-check found (due %s)", m, behind)
	}
	evs, err := s.Claim(ctx, "relay", 500, time.Minute)
	if err != nil || len(evs) != 1 || evs[0].UserID != "usr_behind" {
		t.Fatalf("next claim: %d rows, %v; want the row behind the old mark", len(evs), err)
	}
}

// TestDropMarkMakesTheNextClaimReadFromTheFront: after DropMark a row far
// behind the old mark is claimed at once.
func TestDropMarkMakesTheNextClaimReadFromTheFront(t *testing.T) {
	db := testdb.New(t)
	s := outbox.New(db.Pool)
	s.MarkLag = 0
	seed(t, db, 3)
	if evs, err := s.Claim(ctx, "relay", 500, time.Minute); err != nil || len(evs) != 3 {
		t.Fatalf("claim: %d rows, %v", len(evs), err)
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO leads (owner_id, last_name) VALUES ('usr_behind', 'B')`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `UPDATE outbox SET next_attempt_at = $1::timestamptz - interval '1 hour' WHERE user_id = 'usr_behind'`, s.LowWaterMark()); err != nil {
		t.Fatal(err)
	}
	if evs, err := s.Claim(ctx, "relay", 500, time.Minute); err != nil || len(evs) != 0 {
		t.Fatalf("claim with the mark: %d rows, %v; want none", len(evs), err)
	}
	s.DropMark()
	if !s.LowWaterMark().IsZero() {
		t.Fatal("DropMark left a mark")
	}
	if evs, err := s.Claim(ctx, "relay", 500, time.Minute); err != nil || len(evs) != 1 || evs[0].UserID != "usr_behind" {
		t.Fatalf("claim after DropMark: %d rows, %v; want the row behind the old mark", len(evs), err)
	}
}
