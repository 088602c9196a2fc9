// Package relayrun turns configuration into a running relay: it builds the
// database pool (waiting for the database at start-up), checks the schema,
// loads the signing key, and builds the Paragon token source and client,
// the relay's metrics, the relay itself (pipeline, circuit breaker, rate
// limiter, lease extender, rescuer, gauges) and the services that run beside
// it (the retention purger, the xmin-horizon gauges, the permanent-failure
// watcher, the heartbeat in outbox_relays). `outbox-relay relay`, the demo, the benchmarks
// and tests all start relays through New, so there is one wiring.
//
// It owns no delivery logic (package relay) and no SQL (packages outbox and
// operator). To run another service beside the relay (a heartbeat, say),
// add it to Relay.Services in New (or append to it before Start): any
// startstop.Service is started after the relay and stopped after it.
package relayrun

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/paragon-outbox/outbox-relay/internal/backoff"
	"github.com/paragon-outbox/outbox-relay/internal/config"
	"github.com/paragon-outbox/outbox-relay/internal/dbsqlc"
	"github.com/paragon-outbox/outbox-relay/internal/heartbeat"
	"github.com/paragon-outbox/outbox-relay/internal/migrate"
	"github.com/paragon-outbox/outbox-relay/internal/outbox"
	"github.com/paragon-outbox/outbox-relay/internal/paragon"
	"github.com/paragon-outbox/outbox-relay/internal/pgutil"
	"github.com/paragon-outbox/outbox-relay/internal/relay"
	"github.com/paragon-outbox/outbox-relay/internal/startstop"
)

// PoolMaxConns is the size of a relay's connection pool.
const PoolMaxConns = 8

// Option changes how New builds a relay.
type Option func(*options)

type options struct {
	registry prometheus.Registerer
	tune     []func(*relay.Config)
}

// WithRegistry registers the relay's metrics (outbox_relay_*) with reg;
// without it they are created unregistered.
func WithRegistry(reg prometheus.Registerer) Option {
	return func(o *options) { o.registry = reg }
}

// WithRelayConfig lets f adjust the relay.Config derived from the
// configuration (for settings that have no environment variable, such as
// the circuit breaker's threshold, in tests and benchmarks).
func WithRelayConfig(f func(*relay.Config)) Option {
	return func(o *options) { o.tune = append(o.tune, f) }
}

// Relay is a relay built from configuration with everything it runs on.
// The embedded *relay.Relay gives Stats; Start, Stop and Run here also
// start and stop Services.
type Relay struct {
	*relay.Relay
	// ID is the relay's lease owner name (RELAY_ID or hostname-pid-random).
	ID string
	// Pool is the relay's database pool; Close closes it.
	Pool    *pgxpool.Pool
	Store   *outbox.Store
	Client  *paragon.Client
	Metrics *relay.Metrics
	// Services run beside the relay: started after it by Start, stopped
	// after it by Stop. New adds the purger when retention is on, the
	// horizon gauges (relay.Horizon), the permanent-failure watcher
	// (relay.PermanentWatch) and the heartbeat.
	Services []startstop.Service
}

// New builds a relay from a validated cfg (config.Config.Validate), not yet
// started. It waits up to cfg.StartupTimeout for the database, then fails
// if the schema is not migrated. Errors name the setting at fault; the
// signing key never appears in them. log may be nil (discard). Close the
// result when done.
func New(ctx context.Context, cfg config.Config, log *slog.Logger, opts ...Option) (*Relay, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	key, warn, err := cfg.LoadKey()
	if err != nil {
		return nil, err
	}
	if warn != "" {
		log.Warn(string(warn))
	}
	tokens, err := paragon.NewTokens(paragon.TokensConfig{Key: key, ProjectID: cfg.ProjectID, TTL: cfg.TokenTTL})
	if err != nil {
		return nil, err
	}
	pool, err := OpenPoolWaiting(ctx, cfg, PoolMaxConns, log)
	if err != nil {
		return nil, err
	}
	maxPayload, err := startupChecks(ctx, cfg, pool, log)
	if err != nil {
		pool.Close()
		return nil, err
	}
	client, err := paragon.NewClient(paragon.ClientConfig{
		BaseURL: cfg.BaseURL, ProjectID: cfg.ProjectID, Tokens: tokens, Timeout: cfg.SendTimeout,
		MaxConns: cfg.Concurrency, MaxPayloadBytes: maxPayload, MaxRetryAfter: cfg.MaxRetryAfter,
	})
	if err != nil {
		pool.Close()
		return nil, err
	}
	id := cfg.RelayID
	if id == "" {
		id = DefaultRelayID()
	}
	metrics := relay.NewMetrics(o.registry)
	rcfg := relay.Config{
		RelayID: id, Concurrency: cfg.Concurrency, BatchSize: cfg.BatchSize, PollInterval: cfg.PollInterval, MinPollInterval: cfg.MinPollInterval,
		Lease: cfg.Lease, ShutdownGrace: cfg.ShutdownGrace, MaxAttempts: cfg.MaxAttempts,
		BackoffBase: cfg.BackoffBase, BackoffMax: cfg.BackoffMax, RateLimit: cfg.RateLimit,
		Metrics: metrics,
	}
	for _, f := range o.tune {
		f(&rcfg)
	}
	store := outbox.New(pool)
	r, err := relay.New(store, client, rcfg, log)
	if err != nil {
		pool.Close()
		return nil, err
	}
	rr := &Relay{Relay: r, ID: id, Pool: pool, Store: store, Client: client, Metrics: metrics}
	// Services beside the relay; add new ones here.
	if purging(cfg) {
		rr.Services = append(rr.Services, relay.NewPurger(pool, relay.PurgerConfig{
			RetainDelivered: cfg.RetainDelivered, RetainDead: cfg.RetainDead, Interval: cfg.PurgeInterval, Metrics: metrics,
		}, log))
	}
	rr.Services = append(rr.Services,
		relay.NewHorizon(pool, relay.HorizonConfig{Metrics: metrics}, log),
		relay.NewPermanentWatch(pool, relay.PermanentWatchConfig{}, log))
	hb, err := heartbeat.New(pool, heartbeat.Config{RelayID: id, Health: r.Health}, log)
	if err != nil {
		pool.Close()
		return nil, err
	}
	rr.Services = append(rr.Services, &heartbeatService{hb: hb, log: log})
	log.Info("relay configured", slog.String("endpoint", config.RedactURL(client.Endpoint())), slog.String("database", config.RedactURL(cfg.DatabaseURL)))
	return rr, nil
}

// Start starts the relay, then Services; it returns at once (see
// relay.Relay.Start). If a service fails to start, everything started is
// stopped and the error returned.
func (r *Relay) Start(ctx context.Context) error {
	if err := r.Relay.Start(ctx); err != nil {
		return err
	}
	for i, s := range r.Services {
		if err := s.Start(ctx); err != nil {
			startstop.StopAll(r.Services[:i]...)
			return errors.Join(fmt.Errorf("start service: %w", err), r.Relay.Stop(context.Background()))
		}
	}
	return nil
}

// Stop shuts the relay down gracefully (ctx bounds the grace for sends in
// flight, see relay.Relay.Stop), then stops Services. It does not close the
// pool (Close does). Safe to call twice.
func (r *Relay) Stop(ctx context.Context) error {
	err := r.Relay.Stop(ctx)
	startstop.StopAll(r.Services...)
	return err
}

// Run is Start, then Stop once ctx ends (the grace bounded by
// RELAY_SHUTDOWN_GRACE only). It returns nil after a graceful shutdown.
func (r *Relay) Run(ctx context.Context) error {
	if err := r.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	return r.Stop(context.Background())
}

// Close closes the database pool; call it after Stop (or Run) returned.
func (r *Relay) Close() { r.Pool.Close() }

// DefaultRelayID names a relay instance: host, pid and a random suffix, so
// that a restarted relay never mistakes an old lease for its own.
func DefaultRelayID() string {
	host, _ := os.Hostname()
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// startupChecks checks the schema (migrate.Check), the role's privileges
// (checkPrivileges) and reads the payload limit (payloadLimit), once the pool
// is open. A connection lost meanwhile (a database cut or restarting while the
// relay starts: pgutil.IsConnectionLost) is waited out like an unreachable
// database, until cfg.StartupTimeout from now; any other error is returned at
// once (an unmigrated schema or a missing privilege needs an operator).
func startupChecks(ctx context.Context, cfg config.Config, pool *pgxpool.Pool, log *slog.Logger) (int, error) {
	deadline := time.Now().Add(cfg.StartupTimeout)
	for attempt := int32(1); ; attempt++ {
		maxPayload, err := func() (int, error) {
			if err := migrate.Check(ctx, pool); err != nil {
				return 0, pgutil.Explain(err)
			}
			if err := checkPrivileges(ctx, pool, relayStatements(cfg)); err != nil {
				return 0, err
			}
			return payloadLimit(ctx, pool, cfg.MaxPayloadBytes, log)
		}()
		delay := backoff.Jittered(attempt, 250*time.Millisecond, 5*time.Second)
		if err == nil || !pgutil.IsConnectionLost(err) || time.Now().Add(delay).After(deadline) || ctx.Err() != nil {
			return maxPayload, err
		}
		log.Warn("database connection lost during start-up checks; retrying", slog.Int("attempt", int(attempt)), slog.Duration("retry_in", delay), slog.Any("error", err))
		if !backoff.Sleep(ctx, delay) {
			return 0, err
		}
	}
}

// relayStatements lists every statement a relay built by New runs with cfg:
// the Store's (outbox.Statements: claim, record, leases, gauges, ordering),
// the payload limit read at start-up, the heartbeat's, and the purger's when
// retention is on. A permanent error in any of them makes /readyz fail
// (pgutil.PermanentFailure), so each is checked at start-up. The xmin
// horizon's is not: reading it is optional (pgutil.Optional), a role
// without EXECUTE on outbox_xmin_horizon() only loses those gauges.
func relayStatements(cfg config.Config) []outbox.Statement {
	st := append(outbox.Statements(),
		outbox.Statement{Name: "max_payload_bytes", SQL: dbsqlc.MaxPayloadBytes},
		outbox.Statement{Name: "heartbeat_upsert", SQL: dbsqlc.HeartbeatUpsert},
		outbox.Statement{Name: "heartbeat_mark_stopped", SQL: dbsqlc.HeartbeatMarkStopped},
		outbox.Statement{Name: "heartbeat_prune", SQL: dbsqlc.HeartbeatPrune})
	if purging(cfg) {
		st = append(st,
			outbox.Statement{Name: "purge_delivered", SQL: dbsqlc.PurgeDelivered},
			outbox.Statement{Name: "purge_dead", SQL: dbsqlc.PurgeDead},
			outbox.Statement{Name: "purge_skipped", SQL: dbsqlc.PurgeSkipped})
	}
	return st
}

// purging says whether New runs the retention purger for cfg.
func purging(cfg config.Config) bool {
	return cfg.PurgeInterval > 0 && (cfg.RetainDelivered > 0 || cfg.RetainDead > 0)
}

// checkPrivileges EXPLAINs (without running) each of statements, which
// checks the role's privileges on every table and column they touch: a role
// without them is told at start-up, not at the first claim.
func checkPrivileges(ctx context.Context, pool *pgxpool.Pool, statements []outbox.Statement) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	for _, st := range statements {
		name := st.Name
		sd, err := conn.Conn().Prepare(ctx, "", "EXPLAIN "+st.SQL)
		if err == nil {
			args := make([]any, len(sd.ParamOIDs))
			_, err = conn.Exec(ctx, sd.SQL, args...)
		}
		if err != nil {
			if pgutil.IsPermanent(err) {
				return fmt.Errorf("the relay cannot run its %s statement: %w", name, pgutil.Explain(err))
			}
			return fmt.Errorf("check the relay's %s statement: %w", name, err)
		}
	}
	return nil
}

// heartbeatService runs the relay's heartbeat (internal/heartbeat) as a
// startstop.Service. The console lists relays from these rows; delivery does
// not need them, so a failed first heartbeat is logged, not fatal, and the
// final "stopped" write is bounded by 5 s.
type heartbeatService struct {
	hb  *heartbeat.Service
	log *slog.Logger
}

func (s *heartbeatService) Start(ctx context.Context) error {
	if err := s.hb.Start(ctx); err != nil {
		s.log.Warn("relay heartbeat not written; the console will not list this relay", slog.Any("error", err))
	}
	return nil
}

func (s *heartbeatService) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.hb.Stop(ctx); err != nil {
		s.log.Warn("marking the relay stopped in outbox_relays failed", slog.Any("error", err))
	}
}

// payloadLimit is the relay's payload limit in bytes: the database's
// outbox_settings.max_payload_bytes (the limit outbox_enqueue and the
// attached tables' trigger enforce, default 1 MiB), unless
// RELAY_MAX_PAYLOAD_BYTES (configured) is set lower; a configured value
// above the database's is lowered to it, with a warning. configured equal
// to the default counts as not set.
func payloadLimit(ctx context.Context, pool *pgxpool.Pool, configured int, log *slog.Logger) (int, error) {
	n, err := dbsqlc.New(pool).MaxPayloadBytes(ctx)
	if err != nil {
		return 0, fmt.Errorf("read outbox_settings.max_payload_bytes: %w", pgutil.Explain(err))
	}
	db := int(n)
	switch {
	case configured == config.DefaultMaxPayloadBytes || configured == db:
		return db, nil
	case configured < db:
		return configured, nil
	default:
		log.Warn("RELAY_MAX_PAYLOAD_BYTES is above the database's limit (outbox_settings.max_payload_bytes); using the database's",
			slog.Int("configured", configured), slog.Int("database", db))
		return db, nil
	}
}
