package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/admin"
	"github.com/paragon-outbox/outbox-relay/internal/config"
	"github.com/paragon-outbox/outbox-relay/internal/heartbeat"
	"github.com/paragon-outbox/outbox-relay/internal/migrate"
	"github.com/paragon-outbox/outbox-relay/internal/operator"
	"github.com/paragon-outbox/outbox-relay/internal/outbox"
	"github.com/paragon-outbox/outbox-relay/internal/paragon"
	"github.com/paragon-outbox/outbox-relay/internal/pgutil"
	"github.com/paragon-outbox/outbox-relay/internal/relay"
	"github.com/paragon-outbox/outbox-relay/internal/status"
)

func runRelay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, _, err := loadConfig("relay", args, stderr, nil)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	log := newLogger(cfg, stderr)
	reg := prometheus.NewRegistry()
	r, pool, err := setupRelay(ctx, cfg, log, relay.NewMetrics(reg))
	if err != nil {
		if ctx.Err() != nil {
			// SIGTERM while still waiting for the database: nothing was
			// claimed, so this is a clean stop.
			log.Info("stopped before the relay started", slog.Any("reason", err))
			return nil
		}
		return err
	}
	defer pool.Close()
	if cfg.AdminAddr != "off" {
		adm := admin.New(pool, reg, log)
		if _, err := adm.Start(cfg.AdminAddr); err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = adm.Stop(sctx)
		}()
		go func() { <-ctx.Done(); adm.SetShuttingDown() }()
	}
	if cfg.PurgeInterval > 0 && (cfg.RetainDelivered > 0 || cfg.RetainDead > 0) {
		go purgeLoop(ctx, pool, cfg, log)
	}
	hb, err := heartbeat.New(pool, heartbeat.Config{RelayID: r.ID(), Health: r.Health}, log)
	if err != nil {
		return err
	}
	if err := hb.Start(ctx); err != nil {
		// The console shows relays from these rows; delivery does not need them.
		log.Warn("relay heartbeat not written; the console will not list this relay", slog.Any("error", err))
	} else {
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := hb.Stop(sctx); err != nil {
				log.Warn("marking the relay stopped in outbox_relays failed", slog.Any("error", err))
			}
		}()
	}
	go watchPermanentFailure(ctx, pool, log, time.Minute)
	go horizonLoop(ctx, pool, reg, log, 30*time.Second)
	return r.Run(ctx)
}

// horizonLoop publishes, every interval, what keeps VACUUM from cleaning
// the outbox: the age of the oldest holder of the xmin horizon (a session's
// snapshot, a prepared transaction, a replication slot, a standby's
// hot_standby_feedback) and the outbox tables' dead tuples. A long-held
// horizon makes every claim walk dead index entries; alert on it.
func horizonLoop(ctx context.Context, pool *pgxpool.Pool, reg *prometheus.Registry, log *slog.Logger, interval time.Duration) {
	age := prometheus.NewGauge(prometheus.GaugeOpts{Name: "outbox_relay_xmin_horizon_age_seconds",
		Help: "How long the oldest transaction holding back this database's xmin horizon has been open (0: none with a start time)."})
	xidAge := prometheus.NewGauge(prometheus.GaugeOpts{Name: "outbox_relay_xmin_horizon_xid_age",
		Help: "Age in transactions of the oldest xmin held (session, prepared transaction, replication slot or hot_standby_feedback); 0: none."})
	dead := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "outbox_relay_dead_tuples",
		Help: "Dead row versions in the outbox tables (pg_stat_user_tables.n_dead_tup)."}, []string{"table"})
	reg.MustRegister(age, xidAge, dead)
	t := time.NewTicker(interval)
	defer t.Stop()
	warned := false
	for {
		h, err := status.ReadHorizon(pgutil.Optional(ctx), pool)
		switch {
		case err == nil:
			warned = false
			age.Set(h.OldestAgeSeconds())
			var x int32
			if len(h.Holders) > 0 {
				x = h.Holders[0].XminAge
			}
			xidAge.Set(float64(x))
			for table, n := range h.DeadTuples {
				dead.WithLabelValues(table).Set(float64(n))
			}
		case ctx.Err() == nil && !warned:
			warned = true
			log.Warn("cannot read the xmin horizon (re-run sql/roles.sql after migrating, so the relay's role may EXECUTE outbox_xmin_horizon())", slog.Any("error", err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// watchPermanentFailure logs, once every interval while it lasts, that the
// database refuses the relay's statements for a reason waiting cannot fix
// (privileges revoked, schema dropped), with what to do. The relay keeps
// running and retrying, /readyz fails meanwhile, and delivery resumes by
// itself once the cause is fixed.
func watchPermanentFailure(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger, interval time.Duration) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var last time.Time
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := pgutil.PermanentFailure(pool)
		switch {
		case err != nil && time.Since(last) >= interval:
			log.Error("the database refuses the relay's statements; delivery is stopped until this is fixed (the relay keeps retrying; /readyz fails)", slog.Any("error", err))
			last, failing = time.Now(), true
		case err == nil && failing:
			log.Info("the database accepts the relay's statements again")
			last, failing = time.Time{}, false
		}
	}
}

// purgeLoop applies retention every PurgeInterval, in small batches, so the
// outbox tables stay small. A retention of 0 keeps those events.
func purgeLoop(ctx context.Context, pool *pgxpool.Pool, cfg config.Config, log *slog.Logger) {
	const forever = 100 * 365 * 24 * time.Hour
	delivered, dead := cfg.RetainDelivered, cfg.RetainDead
	if delivered == 0 {
		delivered = forever
	}
	if dead == 0 {
		dead = forever
	}
	t := time.NewTicker(cfg.PurgeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := operator.Purge(ctx, pool, delivered, dead, config.DefaultPurgeBatch)
		if err != nil && ctx.Err() == nil {
			log.Warn("retention purge failed", slog.Any("error", err), slog.Int64("deleted", n))
		} else if n > 0 {
			log.Info("retention purge", slog.Int64("deleted", n))
		}
	}
}

// checkPrivileges EXPLAINs (without running) every statement the relay runs,
// which checks the role's privileges on every table and column they touch:
// a role without them is told at start-up, not at the first claim.
func checkPrivileges(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	// outbox.Statements: every statement the relay runs (sql/queries).
	for _, st := range outbox.Statements() {
		name := st.Name
		sd, err := conn.Conn().Prepare(ctx, "", "EXPLAIN "+st.SQL)
		if err == nil {
			args := make([]any, len(sd.ParamOIDs))
			_, err = conn.Exec(ctx, sd.SQL, args...)
		}
		if err != nil {
			if pgutil.IsPermanent(err) {
				return fmt.Errorf("the relay cannot run its %s statement: %w", name, pgutil.Explain(err))
			}
			return fmt.Errorf("check the relay's %s statement: %w", name, err)
		}
	}
	return nil
}

// defaultRelayID names a relay instance: host, pid and a random suffix, so
// that a restarted relay never mistakes an old lease for its own.
func defaultRelayID() string {
	host, _ := os.Hostname()
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// setupRelay builds everything a relay needs from a validated config: the
// signing key, token source, Paragon client, database pool (schema checked)
// and the relay itself.
func setupRelay(ctx context.Context, cfg config.Config, log *slog.Logger, metrics *relay.Metrics) (*relay.Relay, *pgxpool.Pool, error) {
	key, warn, err := cfg.LoadKey()
	if err != nil {
		return nil, nil, err
	}
	if warn != "" {
		log.Warn(string(warn))
	}
	tokens, err := paragon.NewTokens(paragon.TokensConfig{Key: key, ProjectID: cfg.ProjectID, TTL: cfg.TokenTTL})
	if err != nil {
		return nil, nil, err
	}
	pool, err := openPoolWaiting(ctx, cfg, 8, log)
	if err != nil {
		return nil, nil, err
	}
	if err := migrate.Check(ctx, pool); err != nil {
		pool.Close()
		return nil, nil, pgutil.Explain(err)
	}
	if err := checkPrivileges(ctx, pool); err != nil {
		pool.Close()
		return nil, nil, err
	}
	maxPayload, err := payloadLimit(ctx, pool, cfg.MaxPayloadBytes, log)
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	client, err := paragon.NewClient(paragon.ClientConfig{
		BaseURL: cfg.BaseURL, ProjectID: cfg.ProjectID, Tokens: tokens, Timeout: cfg.SendTimeout,
		MaxConns: cfg.Concurrency, MaxPayloadBytes: maxPayload, MaxRetryAfter: cfg.MaxRetryAfter,
	})
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	id := cfg.RelayID
	if id == "" {
		id = defaultRelayID()
	}
	r, err := relay.New(outbox.New(pool), client, relay.Config{
		RelayID: id, Concurrency: cfg.Concurrency, BatchSize: cfg.BatchSize, PollInterval: cfg.PollInterval, MinPollInterval: cfg.MinPollInterval,
		Lease: cfg.Lease, ShutdownGrace: cfg.ShutdownGrace, MaxAttempts: cfg.MaxAttempts,
		BackoffBase: cfg.BackoffBase, BackoffMax: cfg.BackoffMax, RateLimit: cfg.RateLimit,
		Metrics: metrics,
	}, log)
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	log.Info("relay configured", slog.String("endpoint", config.RedactURL(client.Endpoint())), slog.String("database", config.RedactURL(cfg.DatabaseURL)))
	return r, pool, nil
}

// payloadLimit is the relay's payload limit in bytes: the database's
// outbox_settings.max_payload_bytes (the limit outbox_enqueue and the
// attached tables' trigger enforce, default 1 MiB), unless
// RELAY_MAX_PAYLOAD_BYTES (configured) is set lower; a configured value
// above the database's is lowered to it, with a warning. configured equal
// to the default counts as not set.
func payloadLimit(ctx context.Context, pool *pgxpool.Pool, configured int, log *slog.Logger) (int, error) {
	var db int
	if err := pool.QueryRow(ctx, `SELECT max_payload_bytes FROM outbox_settings`).Scan(&db); err != nil {
		return 0, fmt.Errorf("read outbox_settings.max_payload_bytes: %w", pgutil.Explain(err))
	}
	switch {
	case configured == config.DefaultMaxPayloadBytes || configured == db:
		return db, nil
	case configured < db:
		return configured, nil
	default:
		log.Warn("RELAY_MAX_PAYLOAD_BYTES is above the database's limit (outbox_settings.max_payload_bytes); using the database's",
			slog.Int("configured", configured), slog.Int("database", db))
		return db, nil
	}
}
