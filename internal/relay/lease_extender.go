package relay

import (
	"context"
	"log/slog"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/outbox"
	"github.com/paragon-outbox/outbox-relay/internal/startstop"
)

// LeaseExtenderLeaseDefault is the lease the extender renews (RELAY_LEASE).
const LeaseExtenderLeaseDefault = LeaseDefault

// LeaseExtenderConfig tunes a LeaseExtender.
type LeaseExtenderConfig struct {
	// RelayID is the lease owner whose leases are extended; required.
	RelayID string
	// Lease is the new lease, from now, of every held row. Default 2m.
	Lease time.Duration
	// Interval between extensions. Default Lease/3, so that two extensions
	// can fail before a live relay's lease expires.
	Interval time.Duration
	// Held lists the outbox ids the relay holds (claimed, not yet
	// recorded); it is called once per interval. Required.
	Held func() []int64
	// Extended, if set, is told which of them had their lease extended by
	// the statement sent at from (this process's clock), so the relay knows
	// how long each lease lasts at least.
	Extended func(ids []int64, from time.Time)
	// Metrics receives outbox_relay_db_errors_total{op="extend_leases"};
	// nil creates unregistered ones.
	Metrics *Metrics
}

// LeaseExtender renews the leases of the rows a live relay holds, every
// Interval, so that a lease expires only when its relay is dead or cut off
// from the database (docs/RELIABILITY.md, "Leases"). Only rows still
// in_flight under RelayID are touched.
type LeaseExtender struct {
	startstop.Base
	cfg   LeaseExtenderConfig
	store *outbox.Store
	log   *slog.Logger
}

// NewLeaseExtender returns a lease extender, not started. log may be nil.
func NewLeaseExtender(store *outbox.Store, cfg LeaseExtenderConfig, log *slog.Logger) *LeaseExtender {
	if cfg.Lease <= 0 {
		cfg.Lease = LeaseExtenderLeaseDefault
	}
	if cfg.Interval <= 0 {
		cfg.Interval = cfg.Lease / 3
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	return &LeaseExtender{cfg: cfg, store: store, log: serviceLogger(log, "lease_extender", cfg.RelayID)}
}

// Start extends leases every Interval until ctx ends or Stop is called.
func (s *LeaseExtender) Start(ctx context.Context) error {
	ctx, ok, done := s.StartInit(ctx)
	if !ok {
		return nil
	}
	go func() {
		defer done()
		every(ctx, s.cfg.Interval, false, func() { s.runOnce(ctx) })
	}()
	return nil
}

// runOnce extends the leases of the rows held now; it returns the ids whose
// lease it extended.
func (s *LeaseExtender) runOnce(ctx context.Context) []int64 {
	ids := s.cfg.Held()
	from := time.Now()
	ext, err := s.store.ExtendLeasesOf(ctx, s.cfg.RelayID, ids, s.cfg.Lease)
	if err != nil {
		if ctx.Err() == nil {
			s.cfg.Metrics.DBErrors.WithLabelValues("extend_leases").Inc()
			s.log.Warn("extend leases failed", slog.Int("rows", len(ids)), slog.Any("error", err))
		}
		return nil
	}
	if s.cfg.Extended != nil {
		s.cfg.Extended(ext, from)
	}
	return ext
}

// serviceLogger names a maintenance service in its log lines.
func serviceLogger(log *slog.Logger, component, relayID string) *slog.Logger {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With(slog.String("component", component))
	if relayID != "" {
		log = log.With(slog.String("relay_id", relayID))
	}
	return log
}
