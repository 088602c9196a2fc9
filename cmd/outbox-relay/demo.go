package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/backoff"
	"github.com/paragon-outbox/outbox-relay/internal/config"
	"github.com/paragon-outbox/outbox-relay/internal/dbsqlc"
	"github.com/paragon-outbox/outbox-relay/internal/leads"
	"github.com/paragon-outbox/outbox-relay/internal/migrate"
	"github.com/paragon-outbox/outbox-relay/internal/paragonlocal"
	"github.com/paragon-outbox/outbox-relay/internal/pgutil"
	"github.com/paragon-outbox/outbox-relay/internal/relayrun"
	"github.com/paragon-outbox/outbox-relay/internal/status"
)

// localParagon is a local Paragon-compatible endpoint with a throwaway
// signing key, for the demo and the benchmarks.
type localParagon struct {
	server  *paragonlocal.Server
	baseURL string
	keyPEM  string
	project string
	stop    func(context.Context) error
}

func startLocalParagon(project string, faults paragonlocal.Faults, discardPayloads bool) (*localParagon, error) {
	key, pemBytes, err := paragonlocal.GenerateKey()
	if err != nil {
		return nil, err
	}
	srv, err := paragonlocal.New(paragonlocal.Config{ProjectID: project, PublicKey: &key.PublicKey, Faults: faults, DiscardPayloads: discardPayloads})
	if err != nil {
		return nil, err
	}
	base, stop, err := paragonlocal.Start("127.0.0.1:0", srv)
	if err != nil {
		return nil, fmt.Errorf("start local Paragon endpoint: %w", err)
	}
	return &localParagon{server: srv, baseURL: base, keyPEM: string(pemBytes), project: project, stop: stop}, nil
}

// relayConfig points cfg at the local endpoint with its throwaway key.
func (lp *localParagon) relayConfig(cfg config.Config) config.Config {
	cfg.ProjectID = lp.project
	cfg.SigningKeyPEM = lp.keyPEM
	cfg.SigningKeyFile = ""
	cfg.BaseURL = lp.baseURL
	return cfg
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		leadsPath string
		fail500   float64
		fail429   float64
		timeout   time.Duration
		dbName    string
	)
	cfg, fs, err := loadConfig("demo", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&leadsPath, "leads", "testdata/leads-sample.csv", "CSV of leads to load (leads.csv layout)")
		fs.Float64Var(&fail500, "fail500", 0.05, "share of requests the local endpoint answers 500")
		fs.Float64Var(&fail429, "fail429", 0.05, "share of requests the local endpoint answers 429 with Retry-After: 1")
		fs.DurationVar(&timeout, "timeout", 2*time.Minute, "give up if the leads are not all delivered by then")
		fs.StringVar(&dbName, "db", "outbox_relay_demo", "database the demo (re)creates on the DATABASE_URL server; empty: use DATABASE_URL itself")
	})
	if err != nil {
		return err
	}
	if err := noArgs("demo", fs); err != nil {
		return err
	}
	demoDefaults(&cfg, fs, os.Getenv)
	log := newLogger(cfg, stderr)
	if dbName != "" {
		// A fresh database each run, so the figures below are this run's.
		u, err := pgutil.Recreate(ctx, cfg.DatabaseURL, dbName)
		if err != nil {
			return config.RedactError(fmt.Errorf("demo database %s on the DATABASE_URL server (%s): %w", dbName, config.RedactURL(cfg.DatabaseURL), err), cfg.DatabaseURL)
		}
		cfg.DatabaseURL = u
	}
	fmt.Fprintf(stdout, "== outbox-relay demo\nDatabase: %s (recreated for this run)\n", config.RedactURL(cfg.DatabaseURL))
	f, err := os.Open(leadsPath)
	if err != nil {
		return fmt.Errorf("leads file: %w (run the demo from the repository root, or pass -leads)", err)
	}
	defer f.Close()

	pool, err := openPool(ctx, cfg, 4)
	if err != nil {
		return err
	}
	defer pool.Close()
	n, err := migrate.Up(ctx, pool, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "1. Migrated the database (%d new migrations).\n", n)

	lp, err := startLocalParagon("demo-project", paragonlocal.Faults{Fail500: fail500, Fail429: fail429, RetryAfter: "1"}, false)
	if err != nil {
		return err
	}
	defer func() { _ = lp.stop(context.Background()) }()
	fmt.Fprintf(stdout, "2. Started a local Paragon-compatible endpoint at %s with a throwaway signing key\n   (it verifies every RS256 Paragon User Token; it fails %.0f%% of requests with 500 and %.0f%% with 429 so retries show).\n",
		lp.baseURL, fail500*100, fail429*100)

	before, err := dbsqlc.New(pool).DemoMaxOutboxID(ctx)
	if err != nil {
		return err
	}
	loaded, err := leads.CopyCSV(ctx, pool, f)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "3. Loaded %d leads from %s with COPY; the trigger wrote one outbox row per lead in the same transaction.\n", loaded, leadsPath)

	rcfg := lp.relayConfig(cfg)
	if err := rcfg.Validate(); err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	r, err := relayrun.New(ctx, rcfg, log)
	if err != nil {
		return err
	}
	defer r.Close()
	start := time.Now()
	if err := r.Start(ctx); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "4. Running the relay until every new lead is delivered...")

	waitErr := waitSettled(ctx, pool, before, loaded, timeout)
	elapsed := time.Since(start)
	if err := r.Stop(context.Background()); err != nil {
		return err
	}
	if waitErr != nil {
		return waitErr
	}
	outcome, err := dbsqlc.New(pool).DemoEventsAfter(ctx, before)
	if err != nil {
		return err
	}
	delivered, dead, attempts := outcome.Delivered, outcome.Dead, outcome.Attempts
	fmt.Fprintf(stdout, "   %d delivered, %d dead, %d attempts in %s; the endpoint accepted %d App Events.\n\n5. Status (outbox-relay status):\n\n",
		delivered, dead, attempts, elapsed.Round(time.Millisecond), lp.server.Count())
	rep, err := status.Collect(ctx, pool, 5)
	if err != nil {
		return err
	}
	if err := rep.WriteText(stdout); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nThe database is kept: look around yourself, for example\n  psql '%s' -c 'SELECT status, count(*) FROM outbox GROUP BY status'\n  DATABASE_URL='%s' ./bin/outbox-relay inspect lead:1\n",
		config.RedactURL(cfg.DatabaseURL), config.RedactURL(cfg.DatabaseURL))
	if delivered != loaded {
		return fmt.Errorf("only %d of %d leads were delivered", delivered, loaded)
	}
	log.Debug("demo finished", slog.Int64("delivered", delivered))
	return nil
}

// waitSettled polls until every outbox row after id `after` is delivered or
// dead (want rows expected), or timeout passes. It counts only unsettled
// rows, which the partial indexes on pending and in-flight rows serve, so
// polling stays cheap however many rows are delivered.
func waitSettled(ctx context.Context, pool *pgxpool.Pool, after, want int64, timeout time.Duration) error {
	q := dbsqlc.New(pool)
	events, err := q.DemoEventsAfter(ctx, after)
	if err != nil {
		return err
	}
	total := events.Total
	if total < want {
		return fmt.Errorf("expected %d new outbox rows, found %d", want, total)
	}
	deadline := time.Now().Add(timeout)
	for {
		unsettled, err := q.DemoUnsettledAfter(ctx, after)
		if err != nil {
			return err
		}
		if unsettled == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s: %d of %d events not yet delivered", timeout, unsettled, total)
		}
		if !backoff.Sleep(ctx, 50*time.Millisecond) {
			return errors.New("interrupted")
		}
	}
}

// demoDefaults sets the demo's own defaults for the settings that neither
// the environment nor a flag set: retries visible within seconds.
func demoDefaults(cfg *config.Config, fs *flag.FlagSet, getenv func(string) string) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if getenv("RELAY_BACKOFF_BASE") == "" && !set["backoff-base"] {
		cfg.BackoffBase = 200 * time.Millisecond
	}
	if getenv("RELAY_POLL_INTERVAL") == "" && !set["poll-interval"] {
		cfg.PollInterval = 50 * time.Millisecond
	}
}
