package relay

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/outbox"
	"github.com/paragon-outbox/outbox-relay/internal/startstop"
)

// Rescuer defaults.
const (
	// RescuerIntervalDefault is LeaseDefault/4.
	RescuerIntervalDefault = LeaseDefault / 4
	// RescuerBatchSizeDefault is the most rows one rescue statement resets.
	RescuerBatchSizeDefault = 1000
)

// RescuerConfig tunes a Rescuer.
type RescuerConfig struct {
	// Interval between rescues. Default 30s (a relay uses Lease/4, at least 1s).
	Interval time.Duration
	// BatchSize is the most rows one statement rescues; a full batch is
	// followed at once by another. Default 1000.
	BatchSize int
	// MaxAttempts: a rescued row whose interrupted attempt was its last
	// counted one goes dead instead of pending. Default 25.
	MaxAttempts int
	// Metrics receives outbox_relay_rescued_total; nil creates unregistered ones.
	Metrics *Metrics
}

// Rescuer makes the rows of dead relays claimable again: every Interval it
// resets in_flight rows whose lease expired (of any relay) to pending, in
// batches, logging each interrupted attempt (docs/RELIABILITY.md).
type Rescuer struct {
	startstop.Base
	cfg     RescuerConfig
	store   *outbox.Store
	log     *slog.Logger
	rescued atomic.Int64
}

// NewRescuer returns a rescuer, not started. log may be nil.
func NewRescuer(store *outbox.Store, cfg RescuerConfig, log *slog.Logger) *Rescuer {
	if cfg.Interval <= 0 {
		cfg.Interval = RescuerIntervalDefault
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = RescuerBatchSizeDefault
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = MaxAttemptsDefault
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	return &Rescuer{cfg: cfg, store: store, log: serviceLogger(log, "rescuer", "")}
}

// Rescued is how many rows this rescuer has made claimable.
func (s *Rescuer) Rescued() int64 { return s.rescued.Load() }

// Start rescues every Interval until ctx ends or Stop is called.
func (s *Rescuer) Start(ctx context.Context) error {
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

// runOnce rescues batches until one comes back smaller than BatchSize (or
// fails); it returns how many rows it rescued.
func (s *Rescuer) runOnce(ctx context.Context) int {
	total := 0
	for {
		ids, err := s.store.RescueExpired(ctx, s.cfg.BatchSize, s.cfg.MaxAttempts)
		if err != nil {
			if ctx.Err() == nil {
				s.cfg.Metrics.DBErrors.WithLabelValues("rescue").Inc()
				s.log.Warn("rescue of expired leases failed", slog.Any("error", err))
			}
			return total
		}
		if len(ids) > 0 {
			total += len(ids)
			s.rescued.Add(int64(len(ids)))
			s.cfg.Metrics.Rescued.Add(float64(len(ids)))
			s.log.Warn("rescued rows whose lease expired (their relay died or lost the database)", slog.Int("rows", len(ids)))
		}
		if len(ids) < s.cfg.BatchSize {
			return total
		}
	}
}
