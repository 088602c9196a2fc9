package relayrun_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/paragon-outbox/outbox-relay/internal/config"
	"github.com/paragon-outbox/outbox-relay/internal/operator/operatortest"
	"github.com/paragon-outbox/outbox-relay/internal/paragonlocal"
	"github.com/paragon-outbox/outbox-relay/internal/relay"
	"github.com/paragon-outbox/outbox-relay/internal/relayrun"
	"github.com/paragon-outbox/outbox-relay/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// localConfig is the default configuration pointed at db and a local
// Paragon endpoint with a throwaway key.
func localConfig(t *testing.T, dbURL string) (config.Config, *paragonlocal.Server) {
	t.Helper()
	key, pemBytes, err := paragonlocal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := paragonlocal.New(paragonlocal.Config{ProjectID: "run-project", PublicKey: &key.PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	base, stop, err := paragonlocal.Start("127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stop(context.Background()) })
	cfg := config.Defaults()
	cfg.DatabaseURL, cfg.BaseURL, cfg.ProjectID, cfg.SigningKeyPEM = dbURL, base, "run-project", string(pemBytes)
	cfg.RelayID, cfg.PollInterval, cfg.AdminAddr = "relay-run", 20*time.Millisecond, "off"
	return cfg, srv
}

// TestNewRunsARelayFromConfiguration: a relay built from configuration
// delivers over real HTTP with signed tokens, registers its metrics, runs
// the purger beside it, and stops cleanly.
func TestNewRunsARelayFromConfiguration(t *testing.T) {
	db := testdb.New(t)
	cfg, srv := localConfig(t, db.URL)
	cfg.PurgeInterval = 10 * time.Millisecond
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	old := operatortest.Add(t, db.Pool, operatortest.Event{User: "usr_old", Status: "delivered", Attempts: 1, CreatedAgo: 30 * 24 * time.Hour, DeliveredAgo: 20 * 24 * time.Hour})
	if _, err := db.Pool.Exec(context.Background(), `INSERT INTO leads (owner_id, last_name) SELECT 'usr_' || g, 'L' || g FROM generate_series(1, 20) g`); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	var tuned bool
	r, err := relayrun.New(context.Background(), cfg, nil, relayrun.WithRegistry(reg),
		relayrun.WithRelayConfig(func(c *relay.Config) { tuned = c.RelayID == "relay-run" }))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var purger bool
	for _, s := range r.Services {
		_, ok := s.(*relay.Purger)
		purger = purger || ok
	}
	if !tuned || r.ID != "relay-run" || !purger {
		t.Fatalf("tuned %v, id %q, services %T; want the relay config passed to the option, id relay-run, a purger", tuned, r.ID, r.Services)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := srv.WaitForCount(ctx, 20); err != nil {
		t.Fatalf("endpoint accepted %d of 20 events: %v", srv.Count(), err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		var n int
		if err := db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM outbox WHERE id = $1`, old.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the purger never deleted the 20-day-old delivered event")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := r.Stop(context.Background()); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	var stopped bool
	if err := db.Pool.QueryRow(context.Background(), `SELECT stopped_at IS NOT NULL FROM outbox_relays WHERE relay_id = 'relay-run'`).Scan(&stopped); err != nil {
		t.Fatalf("heartbeat row of relay-run: %v", err)
	}
	if !stopped {
		t.Error("the heartbeat service did not mark relay-run stopped")
	}
	if s := r.Stats(); s.Delivered != 20 {
		t.Fatalf("stats %+v, want 20 delivered", s)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, mf := range mfs {
		found = found || mf.GetName() == "outbox_relay_attempts_total"
	}
	if !found {
		t.Fatal("outbox_relay_attempts_total is not registered")
	}
}

// TestNewRefusesWhatCannotRun: an unmigrated database and a bad signing key
// fail in New with errors that say what to do, and never print the key.
func TestNewRefusesWhatCannotRun(t *testing.T) {
	empty := testdb.NewEmpty(t)
	cfg, _ := localConfig(t, empty.URL)
	cfg.StartupTimeout = 0
	_, err := relayrun.New(context.Background(), cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "migrate") {
		t.Fatalf("unmigrated database: %v, want an error naming migrate", err)
	}

	db := testdb.New(t)
	cfg, _ = localConfig(t, db.URL)
	cfg.SigningKeyPEM = "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n"
	_, err = relayrun.New(context.Background(), cfg, nil)
	if err == nil || strings.Contains(err.Error(), "not a key") {
		t.Fatalf("bad key: %v, want an error without the key text", err)
	}
}
