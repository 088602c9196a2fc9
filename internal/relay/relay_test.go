package relay_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/paragonlocal"
)

var csvToPayload = map[string]string{
	"external_id": "externalId", "first_name": "firstName", "last_name": "lastName", "email": "email",
	"company": "company", "title": "title", "phone": "phone", "lead_source": "leadSource", "status": "status",
	"country": "country", "annual_revenue": "annualRevenue", "number_of_employees": "numberOfEmployees",
	"description": "description", "created_at": "createdAt",
}

// TestDeliversEveryLeadOfLeadsCSVExactlyOnce loads all of leads.csv through
// SQL (COPY, so the trigger fires) and checks that every lead reaches the
// endpoint exactly once, signed for its owner, with a payload equal to the
// CSV row: Unicode, quotes, commas and newlines intact.
func TestDeliversEveryLeadOfLeadsCSVExactlyOnce(t *testing.T) {
	h := newHarness(t, paragonlocal.Faults{})
	n := h.loadCSV(t, "../../testdata/leads.csv")
	if n != 10000 {
		t.Fatalf("loaded %d leads, want 10000", n)
	}
	cfg := fastConfig("relay-a")
	cfg.Concurrency, cfg.BatchSize = 32, 500
	r, stop := h.start(t, cfg)
	h.waitSettled(t, n, 3*time.Minute)
	stop()

	if got := h.countStatus(t); got["delivered"] != n || len(got) != 1 {
		t.Fatalf("outbox statuses = %v, want all %d delivered", got, n)
	}
	if s := r.Stats(); s.Delivered != n || s.LostLeases != 0 {
		t.Errorf("relay stats = %+v", s)
	}

	// Expected payloads straight from the CSV file, parsed independently of Postgres.
	f, err := os.Open("../../testdata/leads.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	records, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	header := records[0]
	type want struct {
		owner   string
		payload map[string]any
	}
	byExternal := map[string]want{}
	for _, rec := range records[1:] {
		p := map[string]any{}
		var owner string
		for i, col := range header {
			if col == "owner_id" {
				owner = rec[i]
				continue
			}
			if rec[i] == "" {
				continue // empty CSV fields are absent from the payload
			}
			key := csvToPayload[col]
			if col == "annual_revenue" || col == "number_of_employees" {
				p[key] = json.Number(rec[i])
			} else {
				p[key] = rec[i]
			}
		}
		byExternal[p["externalId"].(string)] = want{owner, p}
	}

	// Lead ids and event ids as the database assigned them.
	ids := map[string][2]string{} // external_id -> (lead id, event id)
	rows, err := h.db.Pool.Query(context.Background(), `
		SELECT l.external_id, l.id::text, o.event_id::text FROM leads l JOIN outbox o ON o.lead_id = l.id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var ext, lid, eid string
		if err := rows.Scan(&ext, &lid, &eid); err != nil {
			t.Fatal(err)
		}
		ids[ext] = [2]string{lid, eid}
	}
	rows.Close()

	received := h.srv.Received()
	if len(received) != int(n) {
		t.Fatalf("endpoint accepted %d events, want %d", len(received), n)
	}
	for id, c := range h.srv.CountByEventID() {
		if c != 1 {
			t.Errorf("event %s delivered %d times", id, c)
		}
	}
	seen := map[string]bool{}
	for _, rcv := range received {
		if rcv.Name != "Lead Created" {
			t.Fatalf("event name %q", rcv.Name)
		}
		dec := json.NewDecoder(bytes.NewReader(rcv.Payload))
		dec.UseNumber()
		var got map[string]any
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("payload does not decode: %v", err)
		}
		ext, _ := got["externalId"].(string)
		w, ok := byExternal[ext]
		if !ok {
			t.Fatalf("received a lead not in the CSV: externalId %q", ext)
		}
		if seen[ext] {
			t.Fatalf("lead %s received twice", ext)
		}
		seen[ext] = true
		if rcv.Sub != w.owner {
			t.Errorf("lead %s: token sub %q, want owner_id %q", ext, rcv.Sub, w.owner)
		}
		exp := map[string]any{}
		for k, v := range w.payload {
			exp[k] = v
		}
		exp["leadId"] = json.Number(ids[ext][0])
		exp["eventId"] = ids[ext][1]
		if rcv.EventID != ids[ext][1] {
			t.Errorf("lead %s: endpoint saw eventId %q, outbox has %q", ext, rcv.EventID, ids[ext][1])
		}
		if !reflect.DeepEqual(got, exp) {
			t.Fatalf("lead %s: payload mismatch\n got: %v\nwant: %v", ext, got, exp)
		}
	}
	if len(seen) != len(byExternal) {
		t.Fatalf("received %d distinct leads, CSV has %d", len(seen), len(byExternal))
	}

	// Every delivery is recorded as exactly one successful attempt.
	var attempts, ok201 int64
	if err := h.db.Pool.QueryRow(context.Background(), `
		SELECT count(*), count(*) FILTER (WHERE http_status = 201 AND error IS NULL AND finished_at >= started_at)
		FROM outbox_attempts`).Scan(&attempts, &ok201); err != nil {
		t.Fatal(err)
	}
	if attempts != n || ok201 != n {
		t.Errorf("attempts = %d (successful %d), want %d", attempts, ok201, n)
	}
}

// TestRolledBackInsertProducesNoEvent: the outbox row lives and dies with the
// lead's transaction.
func TestRolledBackInsertProducesNoEvent(t *testing.T) {
	h := newHarness(t, paragonlocal.Faults{})
	ctx := context.Background()
	tx, err := h.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO leads (owner_id, last_name, company, external_id) VALUES ('usr_rollback', 'Gone', 'Nope Inc', 'ext-rolled-back')`); err != nil {
		t.Fatal(err)
	}
	var inTx int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&inTx); err != nil {
		t.Fatal(err)
	}
	if inTx != 1 {
		t.Fatalf("inside the transaction the trigger wrote %d outbox rows, want 1", inTx)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := h.db.Pool.Exec(ctx, `INSERT INTO leads (owner_id, last_name, company, external_id) VALUES ('usr_commit', 'Kept', 'Yes Inc', 'ext-committed')`); err != nil {
		t.Fatal(err)
	}
	_, stop := h.start(t, fastConfig("relay-rb"))
	h.waitSettled(t, 1, time.Minute)
	stop()
	var total int
	if err := h.db.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&total); err != nil {
		t.Fatal(err)
	}
	if total != 1 {
		t.Fatalf("outbox has %d rows, want only the committed lead's", total)
	}
	got := h.srv.Received()
	if len(got) != 1 || got[0].Sub != "usr_commit" || !strings.Contains(string(got[0].Payload), "ext-committed") {
		t.Fatalf("endpoint received %d events (%v), want only the committed lead", len(got), got)
	}
}

// TestRetries500And429UntilDelivered: each event fails with 500, then 429
// (Retry-After: 1), then succeeds; attempts rows record exactly that.
func TestRetries500And429UntilDelivered(t *testing.T) {
	h := newHarness(t, paragonlocal.Faults{})
	var mu sync.Mutex
	seen := map[string]int{}
	h.srv.SetRejectFunc(func(name, sub string, payload json.RawMessage) int {
		var p struct {
			EventID string `json:"eventId"`
		}
		_ = json.Unmarshal(payload, &p)
		mu.Lock()
		defer mu.Unlock()
		seen[p.EventID]++
		switch seen[p.EventID] {
		case 1:
			return 500
		case 2:
			return 429
		}
		return 0
	})
	n := h.loadCSV(t, "../../testdata/leads-sample.csv")
	_, stop := h.start(t, fastConfig("relay-retry"))
	h.waitSettled(t, n, 2*time.Minute)
	stop()
	if got := h.countStatus(t); got["delivered"] != n {
		t.Fatalf("statuses %v, want %d delivered", got, n)
	}
	if h.srv.Count() != int(n) {
		t.Fatalf("endpoint accepted %d, want %d", h.srv.Count(), n)
	}
	rows, err := h.db.Pool.Query(context.Background(), `
		SELECT o.id, o.attempts, array_agg(coalesce(a.http_status, 0) ORDER BY a.attempt),
		       bool_and(a.finished_at >= a.started_at),
		       min(a.started_at) FILTER (WHERE a.attempt = 3) - min(a.finished_at) FILTER (WHERE a.attempt = 2)
		FROM outbox o JOIN outbox_attempts a ON a.outbox_id = o.id
		GROUP BY o.id, o.attempts`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var count int64
	for rows.Next() {
		var id int64
		var attempts int32
		var statuses []int32
		var ordered bool
		var gap time.Duration
		if err := rows.Scan(&id, &attempts, &statuses, &ordered, &gap); err != nil {
			t.Fatal(err)
		}
		count++
		if attempts != 3 || fmt.Sprint(statuses) != "[500 429 201]" || !ordered {
			t.Errorf("outbox %d: attempts=%d statuses=%v ordered=%v, want 3 [500 429 201]", id, attempts, statuses, ordered)
		}
		// Retry-After: 1 was honoured: the third attempt started at least a
		// second after the 429 (scheduled by the database clock).
		if gap < 900*time.Millisecond {
			t.Errorf("outbox %d: retried %s after a 429 with Retry-After: 1", id, gap)
		}
	}
	if count != n {
		t.Fatalf("attempt history for %d events, want %d", count, n)
	}
}

// TestRejectedEventGoesDeadAfterOneAttemptWithoutBlockingOthers: a 400 is
// final for that event only.
func TestRejectedEventGoesDeadAfterOneAttemptWithoutBlockingOthers(t *testing.T) {
	h := newHarness(t, paragonlocal.Faults{})
	h.srv.SetRejectFunc(func(name, sub string, payload json.RawMessage) int {
		if bytes.Contains(payload, []byte(`"poison"`)) {
			return 400
		}
		return 0
	})
	ctx := context.Background()
	if _, err := h.db.Pool.Exec(ctx, `INSERT INTO leads (owner_id, last_name, company, title) VALUES ('usr_p', 'Pill', 'Bad Co', 'poison')`); err != nil {
		t.Fatal(err)
	}
	n := h.loadCSV(t, "../../testdata/leads-sample.csv")
	_, stop := h.start(t, fastConfig("relay-dead"))
	h.waitSettled(t, n+1, time.Minute)
	stop()
	if got := h.countStatus(t); got["delivered"] != n || got["dead"] != 1 {
		t.Fatalf("statuses %v, want %d delivered and 1 dead", got, n)
	}
	var attempts int32
	var lastErr string
	var lastStatus int32
	if err := h.db.Pool.QueryRow(ctx, `SELECT attempts, last_error, last_http_status FROM outbox WHERE status = 'dead'`).Scan(&attempts, &lastErr, &lastStatus); err != nil {
		t.Fatal(err)
	}
	if attempts != 1 || lastStatus != 400 || !strings.Contains(lastErr, "400") {
		t.Fatalf("dead event: attempts=%d status=%d last_error=%q, want 1 attempt and a 400 reason", attempts, lastStatus, lastErr)
	}
}

// TestTwoRelaysDeliverEveryLeadOnce: two relays on one database split the
// work; no row is sent twice.
func TestTwoRelaysDeliverEveryLeadOnce(t *testing.T) {
	h := newHarness(t, paragonlocal.Faults{})
	n := h.loadCSV(t, "../../testdata/leads.csv")
	cfgA, cfgB := fastConfig("relay-a"), fastConfig("relay-b")
	cfgA.BatchSize, cfgB.BatchSize = 50, 50 // small batches so both relays interleave
	ra, stopA := h.start(t, cfgA)
	rb, stopB := h.start(t, cfgB)
	h.waitSettled(t, n, 3*time.Minute)
	stopA()
	stopB()
	if got := h.countStatus(t); got["delivered"] != n {
		t.Fatalf("statuses %v, want %d delivered", got, n)
	}
	if h.srv.Count() != int(n) {
		t.Fatalf("endpoint accepted %d events for %d leads", h.srv.Count(), n)
	}
	for id, c := range h.srv.CountByEventID() {
		if c != 1 {
			t.Fatalf("event %s sent %d times", id, c)
		}
	}
	sa, sb := ra.Stats(), rb.Stats()
	if sa.Delivered == 0 || sb.Delivered == 0 || sa.Delivered+sb.Delivered != n {
		t.Fatalf("relay a delivered %d, relay b %d; want both > 0 summing to %d", sa.Delivered, sb.Delivered, n)
	}
	var perRelay int64
	if err := h.db.Pool.QueryRow(context.Background(), `SELECT count(DISTINCT relay_id) FROM outbox_attempts`).Scan(&perRelay); err != nil {
		t.Fatal(err)
	}
	if perRelay != 2 {
		t.Fatalf("attempts recorded by %d relays, want 2", perRelay)
	}
}
