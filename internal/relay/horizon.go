package relay

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/pgutil"
	"github.com/paragon-outbox/outbox-relay/internal/startstop"
	"github.com/paragon-outbox/outbox-relay/internal/status"
)

// HorizonIntervalDefault is how often the horizon service reads the xmin
// horizon and the outbox tables' dead tuples.
const HorizonIntervalDefault = 30 * time.Second

// HorizonConfig tunes a Horizon service.
type HorizonConfig struct {
	// Interval between reads; the first runs at Start. Default 30s.
	Interval time.Duration
	// Metrics receives outbox_relay_xmin_horizon_age_seconds,
	// outbox_relay_xmin_horizon_xid_age and outbox_relay_dead_tuples{table};
	// nil creates unregistered ones.
	Metrics *Metrics
}

// Horizon publishes, every Interval, what keeps VACUUM from cleaning the
// outbox: the age of the oldest holder of this database's xmin horizon (a
// session's snapshot, a prepared transaction, a replication slot, a
// standby's hot_standby_feedback) and the outbox tables' dead tuples
// (status.ReadHorizon). A long-held horizon makes every claim walk dead
// index entries; alert on it. Reading it is not the relay's job: its
// failures (a role without EXECUTE on outbox_xmin_horizon()) are logged
// once until the next success, and never reported as a permanent failure
// (pgutil.Optional).
type Horizon struct {
	startstop.Base
	cfg    HorizonConfig
	pool   *pgxpool.Pool
	log    *slog.Logger
	warned bool // only touched by the service's goroutine
}

// NewHorizon returns a horizon service, not started. log may be nil.
func NewHorizon(pool *pgxpool.Pool, cfg HorizonConfig, log *slog.Logger) *Horizon {
	if cfg.Interval <= 0 {
		cfg.Interval = HorizonIntervalDefault
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	return &Horizon{cfg: cfg, pool: pool, log: serviceLogger(log, "horizon", "")}
}

// Start reads the horizon at once, then every Interval, until ctx ends or
// Stop is called.
func (s *Horizon) Start(ctx context.Context) error {
	ctx, ok, done := s.StartInit(ctx)
	if !ok {
		return nil
	}
	go func() {
		defer done()
		every(ctx, s.cfg.Interval, true, func() { s.runOnce(ctx) })
	}()
	return nil
}

// runOnce reads the horizon and sets the gauges; on failure it leaves them
// as they were.
func (s *Horizon) runOnce(ctx context.Context) {
	h, err := status.ReadHorizon(pgutil.Optional(ctx), s.pool)
	switch {
	case err == nil:
		s.warned = false
		m := s.cfg.Metrics
		m.XminHorizonAgeSeconds.Set(h.OldestAgeSeconds())
		var x int32
		if len(h.Holders) > 0 {
			x = h.Holders[0].XminAge
		}
		m.XminHorizonXIDAge.Set(float64(x))
		for table, n := range h.DeadTuples {
			m.DeadTuples.WithLabelValues(table).Set(float64(n))
		}
	case ctx.Err() == nil && !s.warned:
		s.warned = true
		s.log.Warn("cannot read the xmin horizon (re-run sql/roles.sql after migrating, so the relay's role may EXECUTE outbox_xmin_horizon())", slog.Any("error", err))
	}
}
