package relay

import (
	"context"
	"log/slog"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/outbox"
	"github.com/paragon-outbox/outbox-relay/internal/startstop"
)

// GaugesIntervalDefault is how often the backlog gauges are read.
const GaugesIntervalDefault = 10 * time.Second

// GaugesConfig tunes a Gauges service.
type GaugesConfig struct {
	// Interval between reads; the first read is at Start. Default 10s.
	Interval time.Duration
	// Metrics receives the gauges outbox_relay_pending_events,
	// _in_flight_events, _dead_events, _oldest_pending_age_seconds,
	// _blocked_keys and _oldest_blocked_key_age_seconds; nil creates
	// unregistered ones.
	Metrics *Metrics
}

// Gauges refreshes the backlog gauges from the database every Interval,
// from the partial indexes only (sql/queries/gauges.sql): it never reads delivered
// rows.
type Gauges struct {
	startstop.Base
	cfg   GaugesConfig
	store *outbox.Store
	log   *slog.Logger
}

// NewGauges returns a gauges service, not started. log may be nil.
func NewGauges(store *outbox.Store, cfg GaugesConfig, log *slog.Logger) *Gauges {
	if cfg.Interval <= 0 {
		cfg.Interval = GaugesIntervalDefault
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	return &Gauges{cfg: cfg, store: store, log: serviceLogger(log, "gauges", "")}
}

// Start reads the gauges at once and then every Interval until ctx ends or
// Stop is called.
func (s *Gauges) Start(ctx context.Context) error {
	ctx, ok, done := s.StartInit(ctx)
	if !ok {
		return nil
	}
	go func() {
		defer done()
		everyPaced(ctx, s.cfg.Interval, true, func() { _ = s.runOnce(ctx) })
	}()
	return nil
}

// runOnce reads the gauges once and sets the metrics.
func (s *Gauges) runOnce(ctx context.Context) error {
	g, err := s.store.ReadGauges(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.cfg.Metrics.DBErrors.WithLabelValues("gauges").Inc()
			s.log.Warn("reading the backlog gauges failed; outbox_relay_pending_events and the other backlog gauges keep their last values", slog.Any("error", err))
		}
		return err
	}
	m := s.cfg.Metrics
	m.Pending.Set(float64(g.Pending))
	m.InFlight.Set(float64(g.InFlight))
	m.Dead.Set(float64(g.Dead))
	m.OldestPendingSeconds.Set(g.OldestPendingSeconds)
	m.BlockedKeys.Set(float64(g.BlockedKeys))
	m.OldestBlockedKeySeconds.Set(g.OldestBlockedKeySeconds)
	return nil
}
