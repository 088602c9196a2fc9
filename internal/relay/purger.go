package relay

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/config"
	"github.com/paragon-outbox/outbox-relay/internal/operator"
	"github.com/paragon-outbox/outbox-relay/internal/startstop"
)

// Purger defaults.
const (
	// PurgerIntervalDefault is how often retention runs (RELAY_PURGE_INTERVAL).
	PurgerIntervalDefault = config.DefaultPurgeInterval
	// PurgerBatchSizeDefault is the most rows one delete statement removes;
	// small, so that the relay's purge never holds locks for long.
	PurgerBatchSizeDefault = config.DefaultPurgeBatch
)

// purgeForever stands for "keep": a retention no row is ever older than.
const purgeForever = 100 * 365 * 24 * time.Hour

// PurgerConfig tunes a Purger. A retention of 0 keeps those events.
type PurgerConfig struct {
	// RetainDelivered: delivered events delivered longer ago than this are
	// deleted with their attempts (RELAY_RETAIN_DELIVERED); 0 keeps them.
	RetainDelivered time.Duration
	// RetainDead: dead and skipped events written longer ago than this are
	// deleted (RELAY_RETAIN_DEAD); 0 keeps them. A dead event that blocks
	// its ordering key is kept.
	RetainDead time.Duration
	// Interval between purges; the first runs one Interval after Start.
	// Default 10m.
	Interval time.Duration
	// BatchSize is the most rows one delete statement removes. Default 500.
	BatchSize int
	// Metrics receives outbox_relay_db_errors_total{op="purge"}; nil
	// creates unregistered ones.
	Metrics *Metrics
}

// Purger applies retention every Interval, in small batches (operator.Purge,
// the statements behind `outbox-relay purge`), so the outbox tables stay
// small. Pending and in-flight events are never deleted.
type Purger struct {
	startstop.Base
	cfg  PurgerConfig
	pool *pgxpool.Pool
	log  *slog.Logger
}

// NewPurger returns a purger, not started. log may be nil.
func NewPurger(pool *pgxpool.Pool, cfg PurgerConfig, log *slog.Logger) *Purger {
	if cfg.Interval <= 0 {
		cfg.Interval = PurgerIntervalDefault
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = PurgerBatchSizeDefault
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	return &Purger{cfg: cfg, pool: pool, log: serviceLogger(log, "purger", "")}
}

// Start purges every Interval until ctx ends or Stop is called.
func (s *Purger) Start(ctx context.Context) error {
	ctx, ok, done := s.StartInit(ctx)
	if !ok {
		return nil
	}
	go func() {
		defer done()
		everyPaced(ctx, s.cfg.Interval, false, func() { s.runOnce(ctx) })
	}()
	return nil
}

// runOnce deletes everything past retention, batch by batch, and returns
// how many events it deleted.
func (s *Purger) runOnce(ctx context.Context) int64 {
	delivered, dead := s.cfg.RetainDelivered, s.cfg.RetainDead
	if delivered <= 0 {
		delivered = purgeForever
	}
	if dead <= 0 {
		dead = purgeForever
	}
	n, err := operator.Purge(ctx, s.pool, delivered, dead, s.cfg.BatchSize)
	if err != nil && ctx.Err() == nil {
		s.cfg.Metrics.DBErrors.WithLabelValues("purge").Inc()
		s.log.Warn("retention purge failed", slog.Any("error", err), slog.Int64("deleted", n))
	} else if n > 0 {
		s.log.Info("retention purge", slog.Int64("deleted", n))
	}
	return n
}
