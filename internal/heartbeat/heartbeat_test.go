package heartbeat

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/relay"
	"github.com/paragon-outbox/outbox-relay/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// TestHeartbeatLifecycle: Start writes the row at once, every tick brings the
// relay's current breaker state and in-flight count, Stop marks it stopped,
// and a relay gone for longer than Retain is pruned at the next start.
func TestHeartbeatLifecycle(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `INSERT INTO outbox_relays VALUES ('gone', 'v0', 'h', now() - interval '3 days', now() - interval '2 days', NULL, 'closed', 3)`); err != nil {
		t.Fatal(err)
	}
	var inFlight atomic.Int64
	inFlight.Store(7)
	svc, err := New(db.Pool, Config{RelayID: "r1", Version: "v1.2.3", Interval: 20 * time.Millisecond,
		Health: func() relay.Health {
			b := "closed"
			if inFlight.Load() == 0 {
				b = "open"
			}
			return relay.Health{Breaker: b, InFlight: int(inFlight.Load())}
		}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err == nil {
		t.Error("second Start without Stop succeeded")
	}
	var n int
	var version, breaker string
	var stopped *time.Time
	row := func() {
		t.Helper()
		if err := db.Pool.QueryRow(ctx, `SELECT in_flight, version, breaker_state, stopped_at FROM outbox_relays WHERE relay_id = 'r1'`).Scan(&n, &version, &breaker, &stopped); err != nil {
			t.Fatal(err)
		}
	}
	row()
	if n != 7 || version != "v1.2.3" || breaker != "closed" || stopped != nil {
		t.Fatalf("first heartbeat: in_flight %d version %s breaker %s stopped %v", n, version, breaker, stopped)
	}
	var gone int
	_ = db.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox_relays WHERE relay_id = 'gone'`).Scan(&gone)
	if gone != 0 {
		t.Error("a relay not seen for two days was not pruned")
	}
	inFlight.Store(0)
	deadline := time.Now().Add(30 * time.Second)
	for row(); n != 0 || breaker != "open"; row() {
		if time.Now().After(deadline) {
			t.Fatalf("heartbeat never brought in_flight 0 / breaker open: %d %s", n, breaker)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := svc.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	row()
	if stopped == nil {
		t.Fatal("Stop did not mark the relay stopped")
	}
	if err := svc.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestNewRefusesMissingFields(t *testing.T) {
	if _, err := New(nil, Config{Health: func() relay.Health { return relay.Health{} }}, nil); err == nil {
		t.Error("no RelayID accepted")
	}
	if _, err := New(nil, Config{RelayID: "x"}, nil); err == nil {
		t.Error("no Health accepted")
	}
}
