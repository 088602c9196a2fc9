package relay

import (
	"context"
	"log/slog"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/outbox"
	"github.com/paragon-outbox/outbox-relay/internal/startstop"
)

// Promoter defaults.
const (
	// PromoterIntervalDefault is how often the sweep runs.
	PromoterIntervalDefault = time.Second
	// PromoterKeysDefault is how many ordering keys one statement visits.
	PromoterKeysDefault = 1000
	// promoterStepsPerTick bounds the statements of one tick.
	promoterStepsPerTick = 10
)

// PromoterConfig tunes a Promoter.
type PromoterConfig struct {
	// Interval between ticks. Default 1s.
	Interval time.Duration
	// Keys is how many ordering keys one step visits; a tick runs up to 10
	// steps. Default 1000.
	Keys int
	// Metrics receives outbox_relay_db_errors_total{op="promote_waiting"};
	// nil creates unregistered ones.
	Metrics *Metrics
}

// Promoter sweeps ordering keys every Interval for waiting events that
// nothing blocks any more (see sql/queries/promote_waiting.sql). Each tick visits up
// to 10 × Keys keys and the next tick continues where it stopped, so the
// sweep's cost per second is bounded however many keys there are (a pass
// over K keys takes K / (10 × Keys) ticks).
type Promoter struct {
	startstop.Base
	cfg   PromoterConfig
	store *outbox.Store
	log   *slog.Logger
}

// NewPromoter returns a promoter, not started. log may be nil.
func NewPromoter(store *outbox.Store, cfg PromoterConfig, log *slog.Logger) *Promoter {
	if cfg.Interval <= 0 {
		cfg.Interval = PromoterIntervalDefault
	}
	if cfg.Keys <= 0 {
		cfg.Keys = PromoterKeysDefault
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	return &Promoter{cfg: cfg, store: store, log: serviceLogger(log, "promoter", "")}
}

// Start sweeps every Interval until ctx ends or Stop is called.
func (s *Promoter) Start(ctx context.Context) error {
	ctx, ok, done := s.StartInit(ctx)
	if !ok {
		return nil
	}
	go func() {
		defer done()
		cursor := ""
		every(ctx, s.cfg.Interval, false, func() { cursor = s.runOnce(ctx, cursor) })
	}()
	return nil
}

// runOnce runs up to 10 steps of the sweep from cursor and returns the
// cursor for the next tick ("" once a pass completed).
func (s *Promoter) runOnce(ctx context.Context, cursor string) string {
	for range promoterStepsPerTick {
		n, next, err := s.store.PromoteWaiting(ctx, cursor, s.cfg.Keys)
		if err != nil {
			if ctx.Err() == nil {
				s.cfg.Metrics.DBErrors.WithLabelValues("promote_waiting").Inc()
				s.log.Warn("promotion sweep of waiting events failed", slog.Any("error", err))
			}
			return cursor
		}
		if n > 0 {
			s.log.Debug("promoted waiting events", slog.Int64("events", n))
		}
		cursor = next
		if next == "" {
			return ""
		}
	}
	return cursor
}
