package relay

import (
	"context"
	"log/slog"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/outbox"
	"github.com/paragon-outbox/outbox-relay/internal/startstop"
)

// RecheckerConfig tunes a Rechecker.
type RecheckerConfig struct {
	// Interval between re-checks, stretched by backoff.Paced when one takes
	// long. Default: the store's RecheckInterval (2s).
	Interval time.Duration
	// Metrics receives outbox_relay_db_errors_total{op="recheck_mark"};
	// nil creates unregistered ones.
	Metrics *Metrics
}

// Rechecker keeps the claim's low-water mark honest: every Interval it
// looks for a due pending row behind the mark and lowers the mark to it
// (outbox.Store.RecheckMark, sql/queries/pending_behind_mark.sql), so the
// next claim takes it. It runs on its own connection, off the claim loop:
// while a long transaction holds the xmin horizon the re-check walks every
// dead entry at the front of outbox_pending_due and grows with them; the
// claims do not wait for it, and backoff.Paced spaces it out (a re-check
// that takes d waits at least 50 × d, at most 10 × Interval).
type Rechecker struct {
	startstop.Base
	cfg      RecheckerConfig
	store    *outbox.Store
	log      *slog.Logger
	failures int // re-checks failed in a row (one goroutine uses it)
}

// NewRechecker returns a rechecker for store, not started. log may be nil.
func NewRechecker(store *outbox.Store, cfg RecheckerConfig, log *slog.Logger) *Rechecker {
	if cfg.Interval <= 0 {
		cfg.Interval = store.RecheckInterval
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 2 * time.Second
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	return &Rechecker{cfg: cfg, store: store, log: serviceLogger(log, "rechecker", "")}
}

// Start re-checks every Interval (paced) until ctx ends or Stop is called.
func (s *Rechecker) Start(ctx context.Context) error {
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

// recheckFailuresBeforeDrop is how many re-checks in a row may fail before
// the rechecker drops the low-water mark.
const recheckFailuresBeforeDrop = 3

// runOnce re-checks once. After recheckFailuresBeforeDrop failures in a row
// (a statement_timeout shorter than the re-check takes while a long
// transaction holds the xmin horizon, a database outage) it drops the mark
// (outbox.Store.DropMark): the next claim reads from the front and finds
// every due row, at the cost the mark was saving, rather than leave rows
// behind the mark for want of a re-check.
func (s *Rechecker) runOnce(ctx context.Context) {
	lowered, err := s.store.RecheckMark(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.failures++
			s.cfg.Metrics.DBErrors.WithLabelValues("recheck_mark").Inc()
			if s.failures >= recheckFailuresBeforeDrop {
				s.store.DropMark()
				s.failures = 0
				s.log.Warn("re-checking the low-water mark keeps failing; dropped the mark, the next claim reads the pending events from the front",
					slog.Int("failures", recheckFailuresBeforeDrop), slog.Any("error", err))
			} else {
				s.log.Warn("re-checking the low-water mark failed", slog.Any("error", err))
			}
		}
		return
	}
	s.failures = 0
	if lowered {
		s.log.Debug("a due pending row was behind the low-water mark; the next claim starts from it")
	}
}
