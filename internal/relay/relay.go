// Package relay is the outbox relay's delivery loop: it claims due outbox
// rows under a lease, sends each as a Paragon App Event with bounded
// concurrency, and records every attempt and its outcome, in a pipeline where
// claiming, sending and recording overlap.
//
// Files by job: relay.go (configuration, Start/Stop, statistics),
// pipeline.go (claim → send → record, and graceful shutdown),
// retry_policy.go (what an attempt's answer does to its row and which
// attempts count), breaker.go (the circuit breaker), log_throttle.go
// (rate-limited error logs, the retryable-failure summary), and one file per
// maintenance service, each a startstop.Service with its own Config that
// runs alone: lease_extender.go, rescuer.go, promoter.go, gauges.go,
// rechecker.go (the low-water mark's re-check), purger.go, horizon.go (xmin-horizon gauges), permanent_watch.go (logs a
// permanent database failure). SQL lives
// in package outbox (and operator for the purge), HTTP in package paragon,
// and the wiring from configuration to a running relay in package relayrun.
package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/paragon-outbox/outbox-relay/internal/config"
	"github.com/paragon-outbox/outbox-relay/internal/outbox"
	"github.com/paragon-outbox/outbox-relay/internal/paragon"
	"github.com/paragon-outbox/outbox-relay/internal/startstop"
)

// Sender sends one App Event; *paragon.Client implements it.
type Sender interface {
	Send(ctx context.Context, ev paragon.Event) paragon.Result
}

// Relay defaults, from package config, which documents the settings that
// carry them.
const (
	ConcurrencyDefault        = config.DefaultConcurrency
	BatchSizeDefault          = config.DefaultBatchSize
	PollIntervalDefault       = config.DefaultPollInterval
	MinPollIntervalDefault    = config.DefaultMinPollInterval
	LeaseDefault              = config.DefaultLease
	BreakerThresholdDefault   = 20
	BreakerMinCooldownDefault = time.Second
	BreakerMaxCooldownDefault = time.Minute
)

// Config tunes a Relay. See package config for the documented defaults; the
// zero value of a field here means "use the default".
type Config struct {
	RelayID      string        // lease owner name; required
	Concurrency  int           // sends at once; default 64
	BatchSize    int           // most rows per claim and per record statement; default 500
	PollInterval time.Duration // longest wait between claims when nothing is due; default 250ms
	// MinPollInterval is the wait after a claim that found some but not a
	// full batch of events; it doubles per empty claim up to PollInterval.
	// Default 5ms (or PollInterval if smaller).
	MinPollInterval time.Duration
	Lease           time.Duration // claim lease; default 2m
	// ShutdownGrace is the longest Stop (or the end of Start's context) lets
	// sends in flight finish; 0 or negative abandons them at once. Stop's
	// own context can cut it shorter. relayrun passes RELAY_SHUTDOWN_GRACE
	// (default 20s).
	ShutdownGrace time.Duration
	MaxAttempts   int           // default 25 (RetryPolicy)
	BackoffBase   time.Duration // default 1s (RetryPolicy)
	BackoffMax    time.Duration // default 10m (RetryPolicy)
	RateLimit     float64       // requests/s to Paragon; 0 = unlimited
	// RescueInterval is how often this relay looks for expired leases of any
	// relay; default Lease/4 (at least 1s). See Rescuer.
	RescueInterval time.Duration
	// BreakerThreshold is how many consecutive systemic failures (across at
	// least two Connected Users) open the circuit breaker; default 20.
	BreakerThreshold int
	// BreakerMinCooldown and BreakerMaxCooldown bound the open period before
	// a probe; it doubles while probes fail. Defaults 1s and 1m.
	BreakerMinCooldown, BreakerMaxCooldown time.Duration
	// Metrics receives the relay's measurements; nil creates unregistered ones.
	Metrics *Metrics
	// GaugeInterval is how often backlog gauges are read; default 10s. See Gauges.
	GaugeInterval time.Duration
	// PromoteInterval is how often the relay sweeps ordering keys for
	// waiting events whose earlier events are all delivered or skipped
	// (outbox.Store.PromoteWaiting, up to PromoteKeys keys per step);
	// default 1s and 1000 keys. See Promoter.
	PromoteInterval time.Duration
	PromoteKeys     int
}

func (c *Config) setDefaults() {
	if c.Concurrency <= 0 {
		c.Concurrency = ConcurrencyDefault
	}
	if c.BatchSize <= 0 {
		c.BatchSize = BatchSizeDefault
	}
	if c.PollInterval <= 0 {
		c.PollInterval = PollIntervalDefault
	}
	if c.MinPollInterval <= 0 {
		c.MinPollInterval = MinPollIntervalDefault
	}
	c.MinPollInterval = min(c.MinPollInterval, c.PollInterval)
	if c.Lease <= 0 {
		c.Lease = LeaseDefault
	}
	if c.ShutdownGrace < 0 {
		c.ShutdownGrace = 0
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = MaxAttemptsDefault
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = BackoffBaseDefault
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = BackoffMaxDefault
	}
	if c.RescueInterval <= 0 {
		c.RescueInterval = max(c.Lease/4, time.Second)
	}
	if c.BreakerThreshold <= 0 {
		c.BreakerThreshold = BreakerThresholdDefault
	}
	if c.BreakerMinCooldown <= 0 {
		c.BreakerMinCooldown = BreakerMinCooldownDefault
	}
	if c.BreakerMaxCooldown < c.BreakerMinCooldown {
		c.BreakerMaxCooldown = max(BreakerMaxCooldownDefault, c.BreakerMinCooldown)
	}
	if c.GaugeInterval <= 0 {
		c.GaugeInterval = GaugesIntervalDefault
	}
	if c.PromoteInterval <= 0 {
		c.PromoteInterval = PromoterIntervalDefault
	}
	if c.PromoteKeys <= 0 {
		c.PromoteKeys = PromoterKeysDefault
	}
	if c.Metrics == nil {
		c.Metrics = NewMetrics(nil)
	}
}

// Stats are cumulative counters of one Relay.
type Stats struct {
	Claimed    int64 // rows claimed
	Delivered  int64 // attempts Paragon accepted
	Retried    int64 // attempts scheduled for retry
	Dead       int64 // events given up (rejected or out of attempts)
	Released   int64 // claimed rows given back unsent at shutdown
	Rescued    int64 // expired leases (of any relay) this relay made claimable
	LostLeases int64 // results recorded after the row had moved on (possible duplicate)
	Unrecorded int64 // results that could not be written before exit (rows left to lease rescue)
}

// Relay delivers outbox rows to Paragon. Create it with New (or
// relayrun.New from configuration), run it with Start and Stop (or Run).
// A Relay runs once.
type Relay struct {
	cfg     Config
	store   *outbox.Store
	sender  Sender
	log     *slog.Logger
	limiter *rate.Limiter
	breaker *breaker
	policy  RetryPolicy
	m       *Metrics

	// Maintenance services that live as long as the pipeline: started with
	// it, stopped after its last result is recorded.
	rescuer  *Rescuer
	services []startstop.Service

	mu   sync.Mutex
	held map[int64]int32 // claimed rows not yet recorded: id -> attempt
	// leaseFrom: for each held row, this process's clock just before the
	// claim or the last extension of its lease was sent; its lease in the
	// database ends no earlier than leaseFrom + Lease.
	leaseFrom   map[int64]time.Time
	outstanding int
	freed       chan struct{} // signalled when outstanding drops
	kick        chan struct{} // signalled when a keyed event was delivered

	failures *failureSummary
	stopping atomic.Bool // set when the pipeline begins shutting down

	// Lifecycle (Start, Stop).
	lifeMu      sync.Mutex
	started     bool
	done        chan struct{} // closed when the pipeline has fully stopped
	stopReq     chan struct{} // closed by the first Stop
	stopOnce    sync.Once
	graceCut    chan struct{} // closed when a Stop context ends first
	graceOnce   sync.Once
	cutCause    error       // why the grace was cut (set before graceCut closes)
	abandonedBy atomic.Bool // sends in flight were cut off by a Stop context

	stats struct {
		claimed, delivered, retried, dead, released, lost, unrecorded atomic.Int64
	}
}

// New returns a relay, not yet started. log may be nil (discard). It fails
// only when cfg.RelayID is empty.
func New(store *outbox.Store, sender Sender, cfg Config, log *slog.Logger) (*Relay, error) {
	if cfg.RelayID == "" {
		return nil, errors.New("relay: RelayID is required")
	}
	cfg.setDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Relay{
		cfg:       cfg,
		store:     store,
		sender:    sender,
		log:       log.With(slog.String("component", "relay"), slog.String("relay_id", cfg.RelayID)),
		held:      make(map[int64]int32),
		leaseFrom: make(map[int64]time.Time),
		freed:     make(chan struct{}, 1),
		kick:      make(chan struct{}, 1),
		breaker:   newBreaker(cfg.BreakerThreshold, cfg.BreakerMinCooldown, cfg.BreakerMaxCooldown),
		policy:    RetryPolicy{MaxAttempts: cfg.MaxAttempts, BackoffBase: cfg.BackoffBase, BackoffMax: cfg.BackoffMax},
		m:         cfg.Metrics,
		done:      make(chan struct{}),
		stopReq:   make(chan struct{}),
		graceCut:  make(chan struct{}),
	}
	r.failures = newFailureSummary(r.log, failureSummaryEvery)
	if cfg.RateLimit > 0 {
		// A small burst (1% of a second's worth) keeps every one-second
		// window at the ceiling, not above it.
		burst := max(1, int(cfg.RateLimit/100))
		r.limiter = rate.NewLimiter(rate.Limit(cfg.RateLimit), burst)
	}
	r.rescuer = NewRescuer(store, RescuerConfig{Interval: cfg.RescueInterval, MaxAttempts: cfg.MaxAttempts, Metrics: cfg.Metrics}, log)
	r.services = []startstop.Service{
		NewLeaseExtender(store, LeaseExtenderConfig{RelayID: cfg.RelayID, Lease: cfg.Lease, Held: r.heldIDs, Extended: r.extended, Metrics: cfg.Metrics}, log),
		NewPromoter(store, PromoterConfig{Interval: cfg.PromoteInterval, Keys: cfg.PromoteKeys, Metrics: cfg.Metrics}, log),
		NewGauges(store, GaugesConfig{Interval: cfg.GaugeInterval, Metrics: cfg.Metrics}, log),
		NewRechecker(store, RecheckerConfig{Metrics: cfg.Metrics}, log),
		r.rescuer,
	}
	return r, nil
}

// Stats returns a snapshot of the counters.
func (r *Relay) Stats() Stats {
	return Stats{
		Claimed: r.stats.claimed.Load(), Delivered: r.stats.delivered.Load(), Retried: r.stats.retried.Load(),
		Dead: r.stats.dead.Load(), Released: r.stats.released.Load(), Rescued: r.rescuer.Rescued(),
		LostLeases: r.stats.lost.Load(), Unrecorded: r.stats.unrecorded.Load(),
	}
}

// Start starts the pipeline and its maintenance services (lease extender,
// promoter, rescuer, gauges) in the background and returns at once. It stops claiming
// when ctx ends or Stop is called, then shuts down gracefully (see Stop);
// ctx's values are kept for the whole run but its cancellation never cuts
// database work short. Database outages are logged and retried with
// backoff; they do not stop the relay. Start fails if called twice.
func (r *Relay) Start(ctx context.Context) error {
	r.lifeMu.Lock()
	defer r.lifeMu.Unlock()
	if r.started {
		return errors.New("relay: already started (a Relay runs once; create a new one)")
	}
	r.started = true
	go func() {
		defer close(r.done)
		r.run(ctx)
	}()
	return nil
}

// Stop shuts the relay down gracefully and waits until it has: it stops
// claiming, releases claimed rows not yet sent (without spending their
// attempt), lets sends in flight finish for up to Config.ShutdownGrace or
// until ctx ends, whichever is first (then cancels them: their rows are
// retried without the attempt counting), records every result, and stops
// the maintenance services. It returns nil, or an error wrapping ctx.Err()
// when ctx cut sends in flight short. Safe to call twice, concurrently, and
// without Start (nil).
func (r *Relay) Stop(ctx context.Context) error {
	r.lifeMu.Lock()
	started := r.started
	r.lifeMu.Unlock()
	if !started {
		return nil
	}
	r.stopOnce.Do(func() { close(r.stopReq) })
	select {
	case <-r.done:
	case <-ctx.Done():
		r.graceOnce.Do(func() {
			r.cutCause = context.Cause(ctx)
			close(r.graceCut)
		})
		<-r.done
	}
	if r.abandonedBy.Load() {
		return fmt.Errorf("relay: sends in flight abandoned at shutdown (their rows will be retried): %w", r.cutCause)
	}
	return nil
}

// Run is Start, then Stop once ctx ends (with ShutdownGrace as the only
// bound on the grace period). It returns nil after a graceful shutdown.
func (r *Relay) Run(ctx context.Context) error {
	if err := r.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	return r.Stop(context.Background())
}

// extended notes that the leases of ids (still held) were extended by a
// statement sent at from (this process's clock).
func (r *Relay) extended(ids []int64, from time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		if _, ok := r.leaseFrom[id]; ok {
			r.leaseFrom[id] = from
		}
	}
}

// heldIDs lists the rows claimed and not yet recorded (for lease extension).
func (r *Relay) heldIDs() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]int64, 0, len(r.held))
	for id := range r.held {
		ids = append(ids, id)
	}
	return ids
}
