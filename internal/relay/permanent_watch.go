package relay

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/pgutil"
	"github.com/paragon-outbox/outbox-relay/internal/startstop"
)

// PermanentWatch defaults.
const (
	// PermanentWatchIntervalDefault is how often the error is logged again
	// while the permanent failure lasts.
	PermanentWatchIntervalDefault = time.Minute
	// PermanentWatchPollDefault is how often the watcher looks at the pool's
	// state (no database round trip: pgutil.PermanentFailure).
	PermanentWatchPollDefault = time.Second
)

// PermanentWatchConfig tunes a PermanentWatch.
type PermanentWatchConfig struct {
	// Interval between two error lines while the failure lasts. Default 1m.
	Interval time.Duration
	// Poll is how often the pool's state is looked at. Default 1s.
	Poll time.Duration
}

// PermanentWatch logs, once every Interval while it lasts, that the
// database refuses the relay's statements for a reason waiting cannot fix
// (privileges revoked, schema dropped), with what to do; and once, when the
// statements succeed again, that it is over. It reads the state the pool
// keeps (pgutil.PermanentFailure: the pool must come from pgutil.NewPool);
// the relay keeps running and retrying meanwhile, /readyz fails, and
// delivery resumes by itself once the cause is fixed.
type PermanentWatch struct {
	startstop.Base
	cfg  PermanentWatchConfig
	pool *pgxpool.Pool
	log  *slog.Logger

	// only touched by the service's goroutine
	last    time.Time // last error line
	failing bool
}

// NewPermanentWatch returns a watcher, not started. log may be nil.
func NewPermanentWatch(pool *pgxpool.Pool, cfg PermanentWatchConfig, log *slog.Logger) *PermanentWatch {
	if cfg.Interval <= 0 {
		cfg.Interval = PermanentWatchIntervalDefault
	}
	if cfg.Poll <= 0 {
		cfg.Poll = PermanentWatchPollDefault
	}
	return &PermanentWatch{cfg: cfg, pool: pool, log: serviceLogger(log, "permanent_watch", "")}
}

// Start looks at the pool every Poll until ctx ends or Stop is called.
func (s *PermanentWatch) Start(ctx context.Context) error {
	ctx, ok, done := s.StartInit(ctx)
	if !ok {
		return nil
	}
	go func() {
		defer done()
		every(ctx, s.cfg.Poll, false, func() { s.runOnce(time.Now()) })
	}()
	return nil
}

func (s *PermanentWatch) runOnce(now time.Time) {
	err := pgutil.PermanentFailure(s.pool)
	switch {
	case err != nil && (!s.failing || now.Sub(s.last) >= s.cfg.Interval):
		s.log.Error("the database refuses the relay's statements; delivery is stopped until this is fixed (the relay keeps retrying; /readyz fails)", slog.Any("error", err))
		s.last, s.failing = now, true
	case err == nil && s.failing:
		s.log.Info("the database accepts the relay's statements again")
		s.last, s.failing = time.Time{}, false
	}
}
