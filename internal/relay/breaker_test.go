package relay_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/paragon"
	"github.com/paragon-outbox/outbox-relay/internal/paragonlocal"
	"github.com/paragon-outbox/outbox-relay/internal/relay"
)

// outageConfig trips the breaker quickly and gives events very few attempts,
// so that an outage that spent attempts would kill events.
func outageConfig(id string) relay.Config {
	c := fastConfig(id)
	c.MaxAttempts = 3
	c.BreakerThreshold = 10
	c.BreakerMinCooldown = 50 * time.Millisecond
	c.BreakerMaxCooldown = 200 * time.Millisecond
	return c
}

// TestOutageDoesNotKillEvents: Paragon answers 500 to everything for a
// while. The breaker opens, the relay stops spending attempts, no event goes
// dead although each has only 3 attempts, and all are delivered once Paragon
// is back.
func TestOutageDoesNotKillEvents(t *testing.T) {
	h := newHarness(t, paragonlocal.Faults{Fail500: 1})
	n := h.loadCSV(t, "../../testdata/leads-sample.csv")
	r, stop := h.start(t, outageConfig("relay-outage"))
	deadline := time.Now().Add(time.Minute)
	for h.srv.Stats().Injected500 < 60 {
		if time.Now().After(deadline) {
			t.Fatal("relay never tried during the outage")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Outage well under way: nothing may be dead.
	if got := h.countStatus(t); got["dead"] != 0 {
		t.Fatalf("during the outage %d events went dead", got["dead"])
	}
	h.srv.SetFaults(paragonlocal.Faults{}) // Paragon recovers
	h.waitSettled(t, n, 2*time.Minute)
	stop()
	if got := h.countStatus(t); got["delivered"] != n {
		t.Fatalf("statuses %v, want all %d delivered", got, n)
	}
	if s := r.Stats(); s.Released == 0 {
		t.Errorf("breaker never handed rows back unsent: %+v", s)
	}
	var maxAttempts int
	if err := h.db.Pool.QueryRow(context.Background(), `SELECT max(attempts) FROM outbox`).Scan(&maxAttempts); err != nil {
		t.Fatal(err)
	}
	t.Logf("500s answered: %d; most attempts by one event: %d", h.srv.Stats().Injected500, maxAttempts)
}

// TestRotatedKeyDoesNotKillEvents: every token is refused (401, as after a
// signing key rotation). No event goes dead; once the relay has the right
// key again, everything is delivered.
func TestRotatedKeyDoesNotKillEvents(t *testing.T) {
	h := newHarness(t, paragonlocal.Faults{})
	n := h.loadCSV(t, "../../testdata/leads-sample.csv")
	wrongKey, _, err := paragonlocal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	tokens, _ := paragon.NewTokens(paragon.TokensConfig{Key: wrongKey, ProjectID: project})
	badClient, err := paragon.NewClient(paragon.ClientConfig{BaseURL: h.base, ProjectID: project, Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	badCfg := outageConfig("relay-wrong-key")
	// Without the breaker every event gets far more refused attempts than
	// its max: those must not count once the key is fixed.
	badCfg.BreakerThreshold = 1_000_000
	bad, err := relay.New(h.store, badClient, badCfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- bad.Run(ctx) }()
	deadline := time.Now().Add(time.Minute)
	for {
		var fewest int
		if err := h.db.Pool.QueryRow(context.Background(), `SELECT min(attempts) FROM outbox`).Scan(&fewest); err != nil {
			t.Fatal(err)
		}
		if fewest > 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay with the wrong key made only %d attempts on some event", fewest)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := h.countStatus(t); got["dead"] != 0 || got["delivered"] != 0 {
		t.Fatalf("after 401s everywhere: %v, want nothing dead or delivered", got)
	}
	var wrongKeyAttempts int
	if err := h.db.Pool.QueryRow(context.Background(), `SELECT max(attempts) FROM outbox`).Scan(&wrongKeyAttempts); err != nil {
		t.Fatal(err)
	}
	if wrongKeyAttempts <= 3 {
		t.Fatalf("the wrong-key relay made at most %d attempts per event; the test needs more than max attempts (3)", wrongKeyAttempts)
	}
	// The operator fixes the key: the relay restarts with the right one.
	// Paragon then fails each event once with a 500: that attempt counts,
	// the refused ones before it must not, so nothing dies.
	var mu sync.Mutex
	failedOnce := map[string]bool{}
	h.srv.SetRejectFunc(func(name, sub string, payload json.RawMessage) int {
		mu.Lock()
		defer mu.Unlock()
		k := string(payload)
		if failedOnce[k] {
			return 0
		}
		failedOnce[k] = true
		return 500
	})
	cfg := outageConfig("relay-right-key")
	cfg.BreakerThreshold = 1_000_000 // every event fails once: not an outage
	_, stop := h.start(t, cfg)
	h.waitSettled(t, n, 2*time.Minute)
	stop()
	if got := h.countStatus(t); got["delivered"] != n {
		t.Fatalf("statuses %v, want all %d delivered (attempts refused for a configuration problem must not count)", got, n)
	}
}

// TestOneUsersBacklogSurvivesAnOutage: the breaker trips on an outage even
// when every pending event belongs to one Connected User.
func TestOneUsersBacklogSurvivesAnOutage(t *testing.T) {
	h := newHarness(t, paragonlocal.Faults{Fail500: 1})
	if _, err := h.db.Pool.Exec(context.Background(), `INSERT INTO leads (owner_id, last_name) SELECT 'usr_only', 'L' || g FROM generate_series(1, 100) g`); err != nil {
		t.Fatal(err)
	}
	_, stop := h.start(t, outageConfig("relay-one-user"))
	deadline := time.Now().Add(time.Minute)
	for h.srv.Stats().Injected500 < 60 {
		if time.Now().After(deadline) {
			t.Fatal("relay never tried during the outage")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := h.countStatus(t); got["dead"] != 0 {
		t.Fatalf("during the outage %d of one user's events went dead", got["dead"])
	}
	h.srv.SetFaults(paragonlocal.Faults{})
	h.waitSettled(t, 100, 2*time.Minute)
	stop()
	if got := h.countStatus(t); got["delivered"] != 100 {
		t.Fatalf("statuses %v, want all 100 delivered", got)
	}
}
