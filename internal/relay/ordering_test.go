package relay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/paragon-outbox/outbox-relay/internal/operator"
	"github.com/paragon-outbox/outbox-relay/internal/paragonlocal"
	"github.com/paragon-outbox/outbox-relay/internal/relay"
	"github.com/paragon-outbox/outbox-relay/internal/status"
)

// keyedEvent is one outbox row as the ordering checks need it.
type keyedEvent struct {
	id   int64
	key  string
	name string
}

// outboxByEventID maps event_id to the row's id, ordering key and name.
func (h *harness) outboxByEventID(t *testing.T) map[string]keyedEvent {
	t.Helper()
	rows, err := h.db.Pool.Query(context.Background(), `SELECT event_id::text, id, coalesce(ordering_key, ''), event_name FROM outbox`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	m := map[string]keyedEvent{}
	for rows.Next() {
		var eid string
		var e keyedEvent
		if err := rows.Scan(&eid, &e.id, &e.key, &e.name); err != nil {
			t.Fatal(err)
		}
		m[eid] = e
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

// waitStatuses polls until the outbox's status counts satisfy ok, failing
// after timeout (a bound for a hung relay, not a performance threshold).
func (h *harness) waitStatuses(t *testing.T, timeout time.Duration, what string, ok func(map[string]int64) bool) map[string]int64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := h.countStatus(t)
		if ok(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: statuses %v, waiting for %s", timeout, got, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkKeyOrder checks what the endpoint received, in the order it accepted
// it: per ordering key, outbox ids never go down (no event after a later
// one of its key; a duplicate of the latest one is allowed, an older one
// is not), and every event of the key arrived. It returns the received ids
// per key.
func checkKeyOrder(t *testing.T, h *harness, byEID map[string]keyedEvent) map[string][]int64 {
	t.Helper()
	perKey := map[string][]int64{}
	for _, rc := range h.srv.Received() {
		e, ok := byEID[rc.EventID]
		if !ok {
			t.Fatalf("endpoint received event %s that is not in the outbox", rc.EventID)
		}
		if e.key == "" {
			continue
		}
		ids := perKey[e.key]
		if n := len(ids); n > 0 && e.id < ids[n-1] {
			t.Errorf("key %s: event %d (%s) arrived after event %d", e.key, e.id, e.name, ids[n-1])
		}
		perKey[e.key] = append(ids, e.id)
	}
	want := map[string]map[int64]bool{}
	for _, e := range byEID {
		if e.key != "" {
			if want[e.key] == nil {
				want[e.key] = map[int64]bool{}
			}
			want[e.key][e.id] = true
		}
	}
	for k, ids := range want {
		got := map[int64]bool{}
		for _, id := range perKey[k] {
			got[id] = true
		}
		if len(got) != len(ids) {
			t.Errorf("key %s: endpoint received %d of its %d events", k, len(got), len(ids))
		}
	}
	return perKey
}

// TestLeadEventsArriveInCommitOrderUnderFaults: leads are inserted, updated
// three times in separate transactions and some deleted, while two relays
// deliver to an endpoint that fails a quarter of requests (500) and drops
// some connections. Per lead the endpoint receives Created, each Updated and
// Deleted, in commit order, never an older event after a newer one.
func TestLeadEventsArriveInCommitOrderUnderFaults(t *testing.T) {
	h := newHarness(t, paragonlocal.Faults{Fail500: 0.25, Drop: 0.05})
	ctx := context.Background()
	const leadsN, users = 150, 15
	if _, err := h.db.Pool.Exec(ctx, `
		INSERT INTO leads (owner_id, external_id, last_name)
		SELECT 'user-' || (i % $2), 'ext-' || i, 'Lead ' || i FROM generate_series(1, $1) AS i`, leadsN, users); err != nil {
		t.Fatal(err)
	}
	var ids []int64
	rows, _ := h.db.Pool.Query(ctx, `SELECT id FROM leads ORDER BY id`)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		cfg := fastConfig(fmt.Sprintf("relay-order-%d", i))
		cfg.MaxAttempts = 40 // 30% of attempts fail: no event may die of bad luck
		cfg.BatchSize = 40
		h.start(t, cfg)
	}
	// Three rounds of updates, each lead in its own transaction, from
	// several writers at once, while the relays deliver; then every third
	// lead is deleted.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), 11))
			for round := 1; round <= 3; round++ {
				for i := w; i < len(ids); i += 4 {
					if _, err := h.db.Pool.Exec(ctx, `UPDATE leads SET title = $2, phone = $3 WHERE id = $1`,
						ids[i], fmt.Sprintf("v%d", round), fmt.Sprint(rnd.IntN(1000))); err != nil {
						errs <- err
						return
					}
				}
			}
			for i := w; i < len(ids); i += 4 {
				if i%3 == 0 {
					if _, err := h.db.Pool.Exec(ctx, `DELETE FROM leads WHERE id = $1`, ids[i]); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	deleted := int64((len(ids) + 2) / 3)
	total := int64(len(ids))*4 + deleted
	got := h.waitStatuses(t, 3*time.Minute, fmt.Sprintf("%d delivered", total), func(m map[string]int64) bool {
		return m["delivered"] == total || m["dead"] > 0
	})
	if got["dead"] > 0 {
		t.Fatalf("statuses %v: an event died", got)
	}
	st := h.srv.Stats()
	if st.Injected500 == 0 || st.InjectedDrop == 0 {
		t.Fatalf("no faults injected (%+v): the test did not test retries", st)
	}
	byEID := h.outboxByEventID(t)
	perKey := checkKeyOrder(t, h, byEID)
	// The names per lead: Created, Updated ×3, Deleted for every third.
	names := map[int64]string{}
	for _, e := range byEID {
		names[e.id] = e.name
	}
	for i, id := range ids {
		var seq []string
		last := int64(0)
		for _, oid := range perKey[fmt.Sprintf("lead:%d", id)] {
			if oid != last {
				seq = append(seq, strings.TrimPrefix(names[oid], "Lead "))
			}
			last = oid
		}
		want := "Created Updated Updated Updated"
		if i%3 == 0 {
			want += " Deleted"
		}
		if strings.Join(seq, " ") != want {
			t.Errorf("lead %d received %v, want %s", id, seq, want)
		}
	}
	// The Updated events carry the title of their own update.
	for _, rc := range h.srv.Received() {
		if rc.Name != "Lead Updated" {
			continue
		}
		var p struct {
			Title         string   `json:"title"`
			ChangedFields []string `json:"changedFields"`
		}
		if err := json.Unmarshal(rc.Payload, &p); err != nil || !strings.HasPrefix(p.Title, "v") || len(p.ChangedFields) == 0 {
			t.Fatalf("Lead Updated payload %s (%v)", rc.Payload, err)
		}
	}
}

// TestEnqueueOnOneKeyDeliveredInCommitOrder: many transactions call
// outbox_enqueue on one key at once, with a relay delivering meanwhile;
// the endpoint receives the events in the order their transactions
// committed (recorded by a counter row updated just before commit, whose
// row lock makes its values the commit order).
func TestEnqueueOnOneKeyDeliveredInCommitOrder(t *testing.T) {
	h := newHarness(t, paragonlocal.Faults{Fail500: 0.2})
	ctx := context.Background()
	if _, err := h.db.Pool.Exec(ctx, `
		CREATE TABLE commit_order (n bigint NOT NULL); INSERT INTO commit_order VALUES (0);
		CREATE TABLE committed (event_id uuid PRIMARY KEY, n bigint NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	cfg := fastConfig("relay-enqueue")
	cfg.MaxAttempts = 40
	h.start(t, cfg)
	const workers, each = 8, 12
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), 5))
			for i := range each {
				err := pgx.BeginFunc(ctx, h.db.Pool, func(tx pgx.Tx) error {
					var eid string
					if err := tx.QueryRow(ctx, `SELECT outbox_enqueue('Counter Ticked', 'user-' || $1::int, jsonb_build_object('w', $1::int, 'i', $2::int), 'counter:1')::text`, w, i).Scan(&eid); err != nil {
						return err
					}
					time.Sleep(time.Duration(rnd.IntN(3)) * time.Millisecond)
					_, err := tx.Exec(ctx, `WITH c AS (UPDATE commit_order SET n = n + 1 RETURNING n) INSERT INTO committed SELECT $1::uuid, n FROM c`, eid)
					return err
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	h.waitSettled(t, workers*each, 2*time.Minute)
	rows, _ := h.db.Pool.Query(ctx, `SELECT event_id::text, n FROM committed`)
	order := map[string]int64{}
	for rows.Next() {
		var eid string
		var n int64
		if err := rows.Scan(&eid, &n); err != nil {
			t.Fatal(err)
		}
		order[eid] = n
	}
	rows.Close()
	var last int64
	seen := map[string]bool{}
	for _, rc := range h.srv.Received() {
		n := order[rc.EventID]
		if n < last {
			t.Errorf("event committed %dth arrived after the one committed %dth", n, last)
		}
		last = n
		seen[rc.EventID] = true
	}
	if len(seen) != workers*each {
		t.Fatalf("endpoint received %d distinct events, want %d", len(seen), workers*each)
	}
	checkKeyOrder(t, h, h.outboxByEventID(t))
}

// TestDeadHeadBlocksOnlyItsKey: the first event of key a and of key c is
// rejected (dead). The other keys and unkeyed events are delivered; the
// events behind each dead head wait, also through the relay's promotion
// sweeps. Re-driving a's head delivers a in order; skipping c's head
// (release) delivers c's later events without it; a forced re-drive
// re-sends the skipped one and is recorded as forced.
func TestDeadHeadBlocksOnlyItsKey(t *testing.T) {
	h := newHarness(t, paragonlocal.Faults{})
	var poison sync.Map
	poison.Store("a1", true)
	poison.Store("c1", true)
	h.srv.SetRejectFunc(func(name, sub string, payload json.RawMessage) int {
		var p struct{ N string }
		_ = json.Unmarshal(payload, &p)
		if _, ok := poison.Load(p.N); ok {
			return 422
		}
		return 0
	})
	ctx := context.Background()
	enqueue := func(n, key string) {
		t.Helper()
		var k any
		if key != "" {
			k = key
		}
		if _, err := h.db.Pool.Exec(ctx, `SELECT outbox_enqueue('Step', 'user-1', jsonb_build_object('n', $1::text), $2)`, n, k); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range [][2]string{{"a1", "a"}, {"a2", "a"}, {"b1", "b"}, {"c1", "c"}, {"u1", ""}, {"a3", "a"}, {"b2", "b"}, {"c2", "c"}, {"c3", "c"}} {
		enqueue(e[0], e[1])
	}
	cfg := fastConfig("relay-dead-head")
	cfg.PromoteInterval = 50 * time.Millisecond
	cfg.GaugeInterval = 50 * time.Millisecond
	cfg.Metrics = relay.NewMetrics(nil)
	_, stop := h.start(t, cfg)
	h.waitStatuses(t, time.Minute, "3 delivered, 2 dead", func(m map[string]int64) bool {
		return m["delivered"] == 3 && m["dead"] == 2
	})
	// Several promotion sweeps and claims later, a2, a3, c2, c3 still wait.
	time.Sleep(20 * cfg.PromoteInterval)
	if got := h.countStatus(t); got["waiting"] != 4 || got["delivered"] != 3 {
		t.Fatalf("statuses %v: want the 4 events behind the dead heads waiting", got)
	}
	received := func() string {
		var s []string
		for _, rc := range h.srv.Received() {
			var p struct{ N string }
			_ = json.Unmarshal(rc.Payload, &p)
			s = append(s, p.N)
		}
		return strings.Join(s, " ")
	}
	for _, n := range []string{"a2", "a3", "c2", "c3"} {
		if strings.Contains(received(), n) {
			t.Fatalf("%s was sent behind a dead head: %s", n, received())
		}
	}
	// Operators see the two blocked keys: status, and the relay's gauges.
	rep, err := status.Collect(ctx, h.db.Pool, 10)
	if err != nil {
		t.Fatal(err)
	}
	if rep.BlockedKeys != 2 || len(rep.Blocked) != 2 || rep.Blocked[0].OrderingKey != "a" || rep.Blocked[0].Waiting != 2 ||
		rep.Blocked[1].OrderingKey != "c" || rep.Counts["waiting"] != 4 || rep.OldestBlockedKeySeconds <= 0 {
		t.Fatalf("status: blocked %d %+v, counts %v", rep.BlockedKeys, rep.Blocked, rep.Counts)
	}
	deadline := time.Now().Add(time.Minute)
	for promtest.ToFloat64(cfg.Metrics.BlockedKeys) != 2 || promtest.ToFloat64(cfg.Metrics.OldestBlockedKeySeconds) <= 0 {
		if time.Now().After(deadline) {
			t.Fatalf("gauge outbox_relay_blocked_keys = %v, want 2", promtest.ToFloat64(cfg.Metrics.BlockedKeys))
		}
		time.Sleep(20 * time.Millisecond)
	}
	var a1, c1 int64
	var sk operator.SkipResult
	if err := h.db.Pool.QueryRow(ctx, `SELECT (SELECT id FROM outbox WHERE payload->>'n' = 'a1'), (SELECT id FROM outbox WHERE payload->>'n' = 'c1')`).Scan(&a1, &c1); err != nil {
		t.Fatal(err)
	}
	// Purge never deletes a dead head.
	if n, err := operator.Purge(ctx, h.db.Pool, time.Hour, time.Nanosecond, 100); err != nil || n != 0 {
		t.Fatalf("purge deleted %d (%v), want 0: the dead events are heads of their keys", n, err)
	}

	poison.Delete("a1")
	if res, err := operator.Redrive(ctx, h.db.Pool, operator.Filter{IDs: []int64{a1}}, "tester", "fixed a", false); err != nil || res.Moved != 1 {
		t.Fatalf("redrive a1: %+v %v", res, err)
	}
	sk, err = operator.Skip(ctx, h.db.Pool, nil, []string{"c"}, "tester", "c1 cannot be fixed")
	if err != nil || len(sk.Skipped) != 1 || sk.Skipped[0].ID != c1 || sk.Skipped[0].Promoted == nil {
		t.Fatalf("skip c: %+v %v", sk, err)
	}
	h.waitStatuses(t, time.Minute, "8 delivered, 1 skipped", func(m map[string]int64) bool {
		return m["delivered"] == 8 && m["skipped"] == 1
	})
	got := received()
	for _, want := range []string{"a1 a2 a3", "c2 c3", "b1 b2"} {
		if !strings.Contains(strings.Join(filterPrefix(strings.Fields(got), want[:1]), " "), want) {
			t.Errorf("received %q: want %s in that order", got, want)
		}
	}
	if strings.Contains(got, "c1") {
		t.Errorf("skipped c1 was sent: %s", got)
	}
	// The skip is recorded beside re-drives, with who and why.
	var action, by, reason string
	if err := h.db.Pool.QueryRow(ctx, `SELECT action, redriven_by, reason FROM outbox_redrives WHERE outbox_id = $1`, c1).Scan(&action, &by, &reason); err != nil ||
		action != "skip" || by != "tester" || reason != "c1 cannot be fixed" {
		t.Fatalf("skip record: %s %s %s %v", action, by, reason, err)
	}
	// A skipped event's key moved on: re-driving it needs Force.
	if res, err := operator.Redrive(ctx, h.db.Pool, operator.Filter{IDs: []int64{c1}}, "tester", "", false); err != nil || res.Moved != 0 {
		t.Fatalf("unforced redrive of a skipped event: %+v %v", res, err)
	}
	poison.Delete("c1")
	if res, err := operator.Redrive(ctx, h.db.Pool, operator.Filter{IDs: []int64{c1}, Force: true}, "tester", "send it anyway", false); err != nil || res.Moved != 1 {
		t.Fatalf("forced redrive: %+v %v", res, err)
	}
	h.waitStatuses(t, time.Minute, "9 delivered", func(m map[string]int64) bool { return m["delivered"] == 9 })
	stop()
	var forced bool
	if err := h.db.Pool.QueryRow(ctx, `SELECT forced FROM outbox_redrives WHERE outbox_id = $1 AND action = 'redrive'`, c1).Scan(&forced); err != nil || !forced {
		t.Fatalf("forced re-drive not recorded as forced: %v %v", forced, err)
	}
}

func filterPrefix(ss []string, p string) []string {
	var out []string
	for _, s := range ss {
		if strings.HasPrefix(s, p) {
			out = append(out, s)
		}
	}
	return out
}
