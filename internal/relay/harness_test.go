package relay_test

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/leads"
	"github.com/paragon-outbox/outbox-relay/internal/outbox"
	"github.com/paragon-outbox/outbox-relay/internal/paragon"
	"github.com/paragon-outbox/outbox-relay/internal/paragonlocal"
	"github.com/paragon-outbox/outbox-relay/internal/paragontest"
	"github.com/paragon-outbox/outbox-relay/internal/relay"
	"github.com/paragon-outbox/outbox-relay/internal/testdb"
	"github.com/paragon-outbox/outbox-relay/internal/testutil"
)

func TestMain(m *testing.M) {
	// The relay runs in Asia/Shanghai while the test databases run in
	// America/Los_Angeles: scheduling and tokens must not depend on either.
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		panic(err)
	}
	time.Local = loc
	testdb.Main(m)
}

const project = "test-project"

// harness is a migrated database, a local Paragon endpoint over real HTTP,
// and a real Paragon client whose tokens that endpoint verifies.
type harness struct {
	db     *testdb.Database
	store  *outbox.Store
	srv    *paragonlocal.Server
	base   string
	client *paragon.Client
	tokens *paragon.Tokens
	log    *slog.Logger // relays' logger; nil discards
}

func newHarness(t *testing.T, faults paragonlocal.Faults) *harness {
	t.Helper()
	db := testdb.New(t)
	p := paragontest.New(t, paragontest.Options{ProjectID: project, Faults: faults})
	srv, base, tokens, client := p.Server, p.BaseURL, p.Tokens, p.Client
	return &harness{db: db, store: outbox.New(db.Pool), srv: srv, base: base, client: client, tokens: tokens}
}

// fastConfig retries quickly so tests see several attempts in little time.
func fastConfig(id string) relay.Config {
	return relay.Config{
		RelayID:       id,
		Concurrency:   16,
		BatchSize:     100,
		PollInterval:  10 * time.Millisecond,
		Lease:         30 * time.Second,
		ShutdownGrace: 5 * time.Second,
		MaxAttempts:   10,
		BackoffBase:   10 * time.Millisecond,
		BackoffMax:    50 * time.Millisecond,
		// Tests of retry bookkeeping fail every first attempt on purpose;
		// breaker tests lower this.
		BreakerThreshold: 1_000_000,
	}
}

// start runs a relay until the returned stop is called (or the test ends).
func (h *harness) start(t *testing.T, cfg relay.Config) (r *relay.Relay, stop func()) {
	t.Helper()
	return h.run(t, cfg, h.client)
}

// startWith is start with a client whose payload limit is maxPayload bytes.
func (h *harness) startWith(t *testing.T, cfg relay.Config, maxPayload int) (r *relay.Relay, stop func()) {
	t.Helper()
	client, err := paragon.NewClient(paragon.ClientConfig{BaseURL: h.base, ProjectID: project, Tokens: h.tokens, Timeout: 5 * time.Second, MaxPayloadBytes: maxPayload})
	if err != nil {
		t.Fatal(err)
	}
	return h.run(t, cfg, client)
}

func (h *harness) run(t *testing.T, cfg relay.Config, client *paragon.Client) (r *relay.Relay, stop func()) {
	t.Helper()
	r, err := relay.New(h.store, client, cfg, h.log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("relay %s: Run: %v", cfg.RelayID, err)
			}
		})
	}
	t.Cleanup(stop)
	return r, stop
}

func (h *harness) loadCSV(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := leads.CopyCSV(context.Background(), h.db.Pool, f)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitSettled polls the outbox until want rows exist and all are delivered
// or dead, failing the test after timeout (a generous bound for a hung
// relay, not a performance threshold).
func (h *harness) waitSettled(t *testing.T, want int64, timeout time.Duration) {
	t.Helper()
	testutil.WaitSettled(t, h.db.Pool, want, timeout)
}

func (h *harness) countStatus(t *testing.T) map[string]int64 {
	t.Helper()
	rows, err := h.db.Pool.Query(context.Background(), `SELECT status, count(*) FROM outbox GROUP BY status`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	m := map[string]int64{}
	for rows.Next() {
		var s string
		var n int64
		if err := rows.Scan(&s, &n); err != nil {
			t.Fatal(err)
		}
		m[s] = n
	}
	return m
}
