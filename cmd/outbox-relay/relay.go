package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/paragon-outbox/outbox-relay/internal/admin"
	"github.com/paragon-outbox/outbox-relay/internal/pgutil"
	"github.com/paragon-outbox/outbox-relay/internal/relayrun"
	"github.com/paragon-outbox/outbox-relay/internal/status"
)

func runRelay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, fs, err := loadConfig("relay", args, stderr, nil)
	if err != nil {
		return err
	}
	if err := noArgs("relay", fs); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	log := newLogger(cfg, stderr)
	reg := prometheus.NewRegistry()
	r, err := relayrun.New(ctx, cfg, log, relayrun.WithRegistry(reg))
	if err != nil {
		if ctx.Err() != nil {
			// SIGTERM while still waiting for the database: nothing was
			// claimed, so this is a clean stop.
			log.Info("stopped before the relay started", slog.Any("reason", err))
			return nil
		}
		return err
	}
	defer r.Close()
	if cfg.AdminAddr != "off" {
		adm := admin.New(r.Pool, reg, log)
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
	go watchPermanentFailure(ctx, r.Pool, log, time.Minute)
	go horizonLoop(ctx, r.Pool, reg, log, 30*time.Second)
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
