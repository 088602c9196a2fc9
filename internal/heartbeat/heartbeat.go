// Package heartbeat records that a relay is alive: a maintenance service
// that upserts the relay's row in outbox_relays (id, version, host, start
// time, last seen, circuit breaker state, in-flight count) every Interval,
// marks it stopped on a clean shutdown, and prunes rows of relays gone for a
// day. `outbox-relay console`, a separate process, reads the table to show
// the running relays.
//
// A failed write is logged and retried at the next tick; it never affects
// delivery.
package heartbeat

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/buildinfo"
	"github.com/paragon-outbox/outbox-relay/internal/dbsqlc"
	"github.com/paragon-outbox/outbox-relay/internal/relay"
)

// The statements are sql/queries/heartbeat_*.sql (package dbsqlc).

const (
	// IntervalDefault is how often a relay writes its heartbeat.
	IntervalDefault = 5 * time.Second
	// RetainDefault is how long rows of relays that stopped or vanished stay.
	RetainDefault = 24 * time.Hour
)

// Config configures a Service.
type Config struct {
	// RelayID is the relay's id (RELAY_ID or the generated one). Required.
	RelayID string
	// Version is recorded as is; default: the binary's module version.
	Version string
	// Interval between writes; default IntervalDefault.
	Interval time.Duration
	// Retain: rows not seen for this long are deleted; default RetainDefault.
	Retain time.Duration
	// Health reports the relay's state at each tick. Required.
	Health func() relay.Health
}

// Service writes one relay's heartbeat. Create with New; Start, then Stop.
type Service struct {
	pool    *pgxpool.Pool
	cfg     Config
	log     *slog.Logger
	host    string
	started time.Time

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a stopped Service. log may be nil. Errors: a missing RelayID
// or Health.
func New(pool *pgxpool.Pool, cfg Config, log *slog.Logger) (*Service, error) {
	if cfg.RelayID == "" {
		return nil, errors.New("heartbeat: RelayID is required")
	}
	if cfg.Health == nil {
		return nil, errors.New("heartbeat: Health is required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = IntervalDefault
	}
	if cfg.Retain <= 0 {
		cfg.Retain = RetainDefault
	}
	if cfg.Version == "" {
		cfg.Version = BinaryVersion()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	host, _ := os.Hostname()
	return &Service{pool: pool, cfg: cfg, log: log.With(slog.String("component", "heartbeat")), host: host}, nil
}

// BinaryVersion is the main module's version from the build information
// (buildinfo.Info.Short): a tag such as "v1.4.0"; for a build of a
// checkout, "devel+<12-char VCS revision>" ("-dirty" if modified), or
// "(devel)" when the revision is unknown; "unknown" without build
// information.
func BinaryVersion() string { return buildinfo.Read().Short() }

// Start writes the first heartbeat (returning its error, if any, without
// starting) and then one every Interval until Stop or ctx ends. Calling
// Start twice without Stop is an error.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancel != nil {
		return errors.New("heartbeat: already started")
	}
	s.started = time.Now()
	if err := s.beat(ctx); err != nil {
		return err
	}
	if _, err := dbsqlc.New(s.pool).HeartbeatPrune(ctx, s.cfg.Retain.Milliseconds()); err != nil {
		s.log.Warn("pruning old relay heartbeats failed", slog.Any("error", err))
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel, s.done = cancel, make(chan struct{})
	go s.loop(ctx, s.done)
	return nil
}

func (s *Service) loop(ctx context.Context, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := s.beat(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			s.log.Warn("writing the relay heartbeat failed; retrying every interval", slog.Any("error", err))
			failing = true
		case err == nil && failing:
			s.log.Info("relay heartbeat written again")
			failing = false
		}
	}
}

func (s *Service) beat(ctx context.Context) error {
	h := s.cfg.Health()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Interval)
	defer cancel()
	return dbsqlc.New(s.pool).HeartbeatUpsert(ctx, dbsqlc.HeartbeatUpsertParams{
		RelayID: s.cfg.RelayID, Version: s.cfg.Version, Host: s.host, StartedAt: s.started,
		BreakerState: h.Breaker, InFlight: int32(min(h.InFlight, math.MaxInt32)),
	})
}

// Stop ends the loop and marks the relay stopped in outbox_relays; ctx
// bounds the final write. Stop without Start does nothing.
func (s *Service) Stop(ctx context.Context) error {
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.cancel, s.done = nil, nil
	s.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	<-done
	return dbsqlc.New(s.pool).HeartbeatMarkStopped(ctx, s.cfg.Health().Breaker, s.cfg.RelayID)
}
