package relay_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/outbox"
	"github.com/paragon-outbox/outbox-relay/internal/paragonlocal"
	"github.com/paragon-outbox/outbox-relay/internal/relay"
	"github.com/paragon-outbox/outbox-relay/internal/testutil"
)

func TestBackoffIsCappedAndNeverOverflows(t *testing.T) {
	for _, a := range []int32{1, 2, 10, 30, 62, 63, 64, 1000, 1 << 30, -5, 0} {
		for _, rnd := range []float64{0, 0.5, 0.999999} {
			d := relay.Backoff(a, time.Second, 10*time.Minute, rnd)
			if d <= 0 || d > 10*time.Minute {
				t.Fatalf("Backoff(%d, rnd %v) = %s, want in (0, 10m]", a, rnd, d)
			}
		}
	}
	if d := relay.Backoff(1, time.Second, time.Hour, 0); d != 500*time.Millisecond {
		t.Fatalf("first retry with no jitter = %s, want 500ms (half of base)", d)
	}
	if d := relay.Backoff(4, time.Second, time.Hour, 0.999999); d < 7*time.Second || d > 8*time.Second {
		t.Fatalf("fourth retry = %s, want about 8s", d)
	}
	// A huge base must not overflow into a negative (hot-loop) delay.
	if d := relay.Backoff(100, time.Duration(1<<62), time.Duration(1<<62), 0.5); d <= 0 {
		t.Fatalf("overflowed: %s", d)
	}
}

// TestGracefulShutdownReleasesUnsentRowsWithoutSpendingAttempts: on stop,
// sends in flight finish and are recorded; claimed rows not yet sent go back
// to pending with their attempt counter restored; nothing stays in_flight.
func TestGracefulShutdownReleasesUnsentRowsWithoutSpendingAttempts(t *testing.T) {
	h := newHarness(t, paragonlocal.Faults{Latency: 200 * time.Millisecond})
	n := h.loadCSV(t, "../../testdata/leads-sample.csv")
	cfg := fastConfig("relay-stop")
	cfg.Concurrency, cfg.BatchSize = 4, 100
	r, stop := h.start(t, cfg)
	if err := h.srv.WaitForCount(waitCtx(t, time.Minute), 4); err != nil {
		t.Fatal(err)
	}
	stop()
	st := r.Stats()
	if st.Released == 0 {
		t.Fatalf("nothing released at shutdown: %+v", st)
	}
	ctx := context.Background()
	var inFlight, pending, spentWithoutRecord, delivered int64
	err := h.db.Pool.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE status = 'in_flight'),
		       count(*) FILTER (WHERE status = 'pending'),
		       count(*) FILTER (WHERE attempts <> (SELECT count(*) FROM outbox_attempts a WHERE a.outbox_id = o.id)),
		       count(*) FILTER (WHERE status = 'delivered')
		FROM outbox o`).Scan(&inFlight, &pending, &spentWithoutRecord, &delivered)
	if err != nil {
		t.Fatal(err)
	}
	if inFlight != 0 {
		t.Fatalf("%d rows left in_flight after a graceful stop", inFlight)
	}
	if spentWithoutRecord != 0 {
		t.Fatalf("%d rows have attempts counted that were never made (release spent them)", spentWithoutRecord)
	}
	if delivered != int64(h.srv.Count()) || delivered != st.Delivered || pending+delivered != n {
		t.Fatalf("delivered %d (endpoint %d, stats %d), pending %d of %d", delivered, h.srv.Count(), st.Delivered, pending, n)
	}
	if st.Released != pending {
		t.Fatalf("released %d but %d pending", st.Released, pending)
	}
	// The released rows are delivered by the next relay.
	_, stop2 := h.start(t, fastConfig("relay-next"))
	h.waitSettled(t, n, time.Minute)
	stop2()
	if h.srv.Count() != int(n) {
		t.Fatalf("endpoint accepted %d, want %d", h.srv.Count(), n)
	}
}

func waitCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestPoisonEvents: big integers keep every digit; events Paragon refuses
// for their content (400, 413, 422) and payloads over the size limit go dead
// at once with the reason, without blocking the others.
func TestPoisonEvents(t *testing.T) {
	h := newHarness(t, paragonlocal.Faults{})
	h.srv.SetRejectFunc(func(name, sub string, payload json.RawMessage) int {
		switch {
		case strings.Contains(string(payload), `"title": "reject-422"`), strings.Contains(string(payload), `"title":"reject-422"`):
			return 422
		case strings.Contains(string(payload), `reject-413`):
			return 413
		}
		return 0
	})
	ctx := context.Background()
	_, err := h.db.Pool.Exec(ctx, `
		INSERT INTO leads (owner_id, last_name, title, annual_revenue) VALUES
		  ('usr_big', 'Big', 'big number', 9007199254740993),
		  ('usr_big', 'Max', 'max bigint', 9223372036854775807),
		  ('usr_p', 'A', 'reject-422', NULL),
		  ('usr_p', 'B', 'reject-413', NULL),
		  ('usr_p', 'C', NULL, NULL);
		UPDATE outbox SET payload = payload || jsonb_build_object('blob', repeat('x', 300000)) WHERE payload->>'lastName' = 'C';`)
	if err != nil {
		t.Fatal(err)
	}
	n := h.loadCSV(t, "../../testdata/leads-sample.csv")
	cfg := fastConfig("relay-poison")
	_, stop := h.startWith(t, cfg, 256<<10)
	h.waitSettled(t, n+5, time.Minute)
	stop()
	got := h.countStatus(t)
	if got["delivered"] != n+2 || got["dead"] != 3 {
		t.Fatalf("statuses %v, want %d delivered and 3 dead", got, n+2)
	}
	rows, err := h.db.Pool.Query(ctx, `SELECT payload->>'lastName', attempts, coalesce(last_http_status, 0), last_error FROM outbox WHERE status = 'dead' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	want := map[string]struct {
		status int32
		text   string
	}{"A": {422, "422"}, "B": {413, "413"}, "C": {0, "over the 262144-byte limit (outbox_settings.max_payload_bytes / RELAY_MAX_PAYLOAD_BYTES)"}}
	for rows.Next() {
		var name, lastErr string
		var attempts, status int32
		if err := rows.Scan(&name, &attempts, &status, &lastErr); err != nil {
			t.Fatal(err)
		}
		w := want[name]
		if attempts != 1 || status != w.status || !strings.Contains(lastErr, w.text) {
			t.Errorf("dead %s: attempts=%d status=%d error=%q, want 1 attempt, %d, %q", name, attempts, status, lastErr, w.status, w.text)
		}
		// Paragon refused A and B; the relay itself refused to send C.
		if wantPrefix := map[bool]string{true: "not sent: payload is ", false: "rejected, not retried: "}[name == "C"]; !strings.HasPrefix(lastErr, wantPrefix) {
			t.Errorf("dead %s: error %q, want prefix %q", name, lastErr, wantPrefix)
		}
	}
	var sawBig, sawMax bool
	for _, rc := range h.srv.Received() {
		sawBig = sawBig || strings.Contains(string(rc.Payload), `9007199254740993`)
		sawMax = sawMax || strings.Contains(string(rc.Payload), `9223372036854775807`)
		if strings.Contains(string(rc.Payload), "xxxxxxxx") {
			t.Fatal("the oversized payload was sent")
		}
	}
	if !sawBig || !sawMax {
		t.Fatalf("large integers lost digits on the way (2^53+1 seen: %v, max int64 seen: %v)", sawBig, sawMax)
	}
}

// TestRelayWorksInPgBouncerTransactionModeExecModes: behind PgBouncer in
// transaction mode, pgx must not rely on named prepared statements; the
// relay works with default_query_exec_mode=exec and simple_protocol.
func TestRelayWorksInPgBouncerTransactionModeExecModes(t *testing.T) {
	for _, mode := range []string{"exec", "simple_protocol"} {
		t.Run(mode, func(t *testing.T) {
			h := newHarness(t, paragonlocal.Faults{Fail500: 0.1})
			sep := "?"
			if strings.Contains(h.db.URL, "?") {
				sep = "&"
			}
			pool, err := pgxpool.New(context.Background(), h.db.URL+sep+"default_query_exec_mode="+mode)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(pool.Close)
			h.store = outbox.New(pool)
			n := h.loadCSV(t, "../../testdata/leads-sample.csv")
			_, stop := h.start(t, fastConfig("relay-"+mode))
			h.waitSettled(t, n, time.Minute)
			stop()
			if got := h.countStatus(t); got["delivered"] != n {
				t.Fatalf("statuses %v", got)
			}
		})
	}
}

// TestLiveRelayKeepsItsLease: sends take longer than the lease; the relay
// extends the leases of rows it holds, so another relay's rescuer never
// takes them and nothing is sent twice.
func TestLiveRelayKeepsItsLease(t *testing.T) {
	h := newHarness(t, paragonlocal.Faults{Latency: 700 * time.Millisecond})
	if _, err := h.db.Pool.Exec(context.Background(), `INSERT INTO leads (owner_id, last_name) SELECT 'usr_' || g, 'L' || g FROM generate_series(1, 40) g`); err != nil {
		t.Fatal(err)
	}
	a, b := fastConfig("relay-slow-a"), fastConfig("relay-slow-b")
	for _, c := range []*relay.Config{&a, &b} {
		c.Lease = 300 * time.Millisecond
		c.RescueInterval = 50 * time.Millisecond
		c.Concurrency, c.BatchSize = 4, 10
	}
	ra, stopA := h.start(t, a)
	rb, stopB := h.start(t, b)
	h.waitSettled(t, 40, time.Minute)
	stopA()
	stopB()
	for id, c := range h.srv.CountByEventID() {
		if c != 1 {
			t.Errorf("event %s sent %d times: a lease expired under a live relay", id, c)
		}
	}
	sa, sb := ra.Stats(), rb.Stats()
	if sa.Rescued+sb.Rescued != 0 || sa.LostLeases+sb.LostLeases != 0 {
		t.Fatalf("rescued %d, lost leases %d; want none", sa.Rescued+sb.Rescued, sa.LostLeases+sb.LostLeases)
	}
}

// TestFailuresReachTheLog: an operator reading only the logs learns that
// tokens are refused and which events died, without payloads or tokens.
func TestFailuresReachTheLog(t *testing.T) {
	h := newHarness(t, paragonlocal.Faults{})
	var buf testutil.SyncBuffer
	h.log = slog.New(slog.NewTextHandler(&buf, nil))
	h.srv.SetRejectFunc(func(name, sub string, payload json.RawMessage) int {
		if strings.Contains(string(payload), "reject-400") {
			return 400
		}
		if sub == "usr_locked" {
			return 401
		}
		return 0
	})
	if _, err := h.db.Pool.Exec(context.Background(), `
		INSERT INTO leads (owner_id, last_name, title) VALUES ('usr_ok', 'A', 'reject-400'), ('usr_locked', 'B', NULL), ('usr_ok', 'C', NULL)`); err != nil {
		t.Fatal(err)
	}
	_, stop := h.start(t, fastConfig("relay-logs"))
	deadline := time.Now().Add(time.Minute)
	for !(strings.Contains(buf.String(), "event is dead") && strings.Contains(buf.String(), "Paragon refused the relay's tokens")) {
		if time.Now().After(deadline) {
			t.Fatalf("log lacks the dead event or the refused tokens:\n%s", buf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	logs := buf.String()
	for _, secret := range []string{"Bearer", "eyJ", "lastName"} {
		if strings.Contains(logs, secret) {
			t.Fatalf("log contains %q:\n%s", secret, logs)
		}
	}
}
