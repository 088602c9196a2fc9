// Package relay is the outbox relay's delivery loop: it claims due outbox
// rows under a lease, sends each as a Paragon App Event with bounded
// concurrency, and records every attempt and its outcome, in a pipeline where
// claiming, sending and recording overlap.
//
// It owns retry policy (capped exponential backoff with jitter, Retry-After,
// max attempts), lease upkeep (extension while held, rescue of expired
// leases) and graceful shutdown. SQL lives in package outbox; HTTP in package
// paragon.
package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/paragon-outbox/outbox-relay/internal/config"
	"github.com/paragon-outbox/outbox-relay/internal/outbox"
	"github.com/paragon-outbox/outbox-relay/internal/paragon"
)

// Sender sends one App Event; *paragon.Client implements it.
type Sender interface {
	Send(ctx context.Context, ev paragon.Event) paragon.Result
}

// Config tunes a Relay. See package config for the documented defaults; the
// zero value of a field here means "use the default".
type Config struct {
	RelayID      string        // lease owner name; required
	Concurrency  int           // sends at once; default 64
	BatchSize    int           // most rows per claim and per record statement; default 500
	PollInterval time.Duration // longest wait between claims when nothing is due; default 50ms
	// MinPollInterval is the wait after a claim that found some but not a
	// full batch of events; it doubles per empty claim up to PollInterval.
	// Default 5ms (or PollInterval if smaller).
	MinPollInterval time.Duration
	Lease           time.Duration // claim lease; default 2m
	ShutdownGrace   time.Duration // time for in-flight sends at shutdown; default 20s
	MaxAttempts     int           // default 25
	BackoffBase     time.Duration // default 1s
	BackoffMax      time.Duration // default 10m
	RateLimit       float64       // requests/s to Paragon; 0 = unlimited
	// RescueInterval is how often this relay looks for expired leases of any
	// relay; default Lease/4 (at least 1s).
	RescueInterval time.Duration
	// BreakerThreshold is how many consecutive systemic failures (across at
	// least two Connected Users) open the circuit breaker; default 20.
	BreakerThreshold int
	// BreakerMinCooldown and BreakerMaxCooldown bound the open period before
	// a probe; it doubles while probes fail. Defaults 1s and 1m.
	BreakerMinCooldown, BreakerMaxCooldown time.Duration
	// Metrics receives the relay's measurements; nil creates unregistered ones.
	Metrics *Metrics
	// GaugeInterval is how often backlog gauges are read; default 10s.
	GaugeInterval time.Duration
	// PromoteInterval is how often the relay sweeps ordering keys for
	// waiting events whose earlier events are all delivered or skipped
	// (outbox.Store.PromoteWaiting, up to PromoteKeys keys per step);
	// default 1s and 1000 keys.
	PromoteInterval time.Duration
	PromoteKeys     int
}

func (c *Config) setDefaults() {
	if c.Concurrency <= 0 {
		c.Concurrency = config.DefaultConcurrency
	}
	if c.BatchSize <= 0 {
		c.BatchSize = config.DefaultBatchSize
	}
	if c.PollInterval <= 0 {
		c.PollInterval = config.DefaultPollInterval
	}
	if c.MinPollInterval <= 0 {
		c.MinPollInterval = config.DefaultMinPollInterval
	}
	c.MinPollInterval = min(c.MinPollInterval, c.PollInterval)
	if c.Lease <= 0 {
		c.Lease = config.DefaultLease
	}
	if c.ShutdownGrace < 0 {
		c.ShutdownGrace = 0
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = config.DefaultMaxAttempts
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = config.DefaultBackoffBase
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = config.DefaultBackoffMax
	}
	if c.RescueInterval <= 0 {
		c.RescueInterval = max(c.Lease/4, time.Second)
	}
	if c.BreakerThreshold <= 0 {
		c.BreakerThreshold = 20
	}
	if c.BreakerMinCooldown <= 0 {
		c.BreakerMinCooldown = time.Second
	}
	if c.BreakerMaxCooldown < c.BreakerMinCooldown {
		c.BreakerMaxCooldown = max(time.Minute, c.BreakerMinCooldown)
	}
	if c.GaugeInterval <= 0 {
		c.GaugeInterval = 10 * time.Second
	}
	if c.PromoteInterval <= 0 {
		c.PromoteInterval = time.Second
	}
	if c.PromoteKeys <= 0 {
		c.PromoteKeys = 1000
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

// Relay delivers outbox rows to Paragon. Create it with New, run it with Run.
type Relay struct {
	cfg     Config
	store   *outbox.Store
	sender  Sender
	log     *slog.Logger
	limiter *rate.Limiter
	breaker *breaker
	m       *Metrics

	mu   sync.Mutex
	held map[int64]int32 // claimed rows not yet recorded: id -> attempt
	// leaseFrom: for each held row, this process's clock just before the
	// claim or the last extension of its lease was sent; its lease in the
	// database ends no earlier than leaseFrom + Lease.
	leaseFrom   map[int64]time.Time
	outstanding int
	freed       chan struct{} // signalled when outstanding drops
	kick        chan struct{} // signalled when a keyed event was delivered

	retrySummary retrySummary
	stopping     atomic.Bool // set when Run begins shutting down

	stats struct {
		claimed, delivered, retried, dead, released, rescued, lost, unrecorded atomic.Int64
	}
}

// New returns a relay. log may be nil (discard).
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
		m:         cfg.Metrics,
	}
	if cfg.RateLimit > 0 {
		// A small burst (1% of a second's worth) keeps every one-second
		// window at the ceiling, not above it.
		burst := max(1, int(cfg.RateLimit/100))
		r.limiter = rate.NewLimiter(rate.Limit(cfg.RateLimit), burst)
	}
	return r, nil
}

// Stats returns a snapshot of the counters.
func (r *Relay) Stats() Stats {
	return Stats{
		Claimed: r.stats.claimed.Load(), Delivered: r.stats.delivered.Load(), Retried: r.stats.retried.Load(),
		Dead: r.stats.dead.Load(), Released: r.stats.released.Load(), Rescued: r.stats.rescued.Load(),
		LostLeases: r.stats.lost.Load(), Unrecorded: r.stats.unrecorded.Load(),
	}
}

// maxOutstanding bounds rows claimed but not yet recorded: enough to keep
// every sender busy while the next batch is claimed and the last recorded.
func (r *Relay) maxOutstanding() int { return r.cfg.Concurrency + 2*r.cfg.BatchSize }

// Run delivers until ctx is cancelled, then shuts down gracefully: it stops
// claiming, releases claimed rows not yet sent (without spending their
// attempt), lets sends in flight finish for up to ShutdownGrace, records
// their results, and returns nil. Database outages are logged and retried
// with backoff; they do not end Run.
func (r *Relay) Run(ctx context.Context) error {
	work := make(chan outbox.Event, r.maxOutstanding())
	results := make(chan outbox.Result, r.maxOutstanding())
	stopSending := make(chan struct{})
	sendCtx, cancelSends := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSends()
	// bg is for database work that must finish even while shutting down.
	bg, cancelBG := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBG()

	r.log.Info("relay started", slog.Int("concurrency", r.cfg.Concurrency), slog.Int("batch_size", r.cfg.BatchSize),
		slog.Duration("lease", r.cfg.Lease), slog.Int("max_attempts", r.cfg.MaxAttempts))

	var senders sync.WaitGroup
	var unsentMu sync.Mutex
	var unsent []outbox.Held
	for range r.cfg.Concurrency {
		senders.Add(1)
		go func() {
			defer senders.Done()
			r.sendLoop(sendCtx, stopSending, work, results, func(h outbox.Held) {
				unsentMu.Lock()
				unsent = append(unsent, h)
				unsentMu.Unlock()
			})
		}()
	}

	recorderDone := make(chan struct{})
	go func() {
		defer close(recorderDone)
		r.recordLoop(bg, results)
	}()

	upkeepCtx, stopUpkeep := context.WithCancel(bg)
	var upkeep sync.WaitGroup
	upkeep.Add(4)
	go func() { defer upkeep.Done(); r.leaseLoop(upkeepCtx) }()
	go func() { defer upkeep.Done(); r.promoteLoop(upkeepCtx) }()
	go func() { defer upkeep.Done(); r.gaugeLoop(upkeepCtx) }()
	go func() { defer upkeep.Done(); r.rescueLoop(upkeepCtx) }()

	r.claimLoop(ctx, bg, work)

	// Shutdown: stop handing out work, give back what was never sent.
	r.stopping.Store(true)
	close(stopSending)
	r.log.Info("relay stopping: no new claims; releasing unsent rows", slog.Duration("grace", r.cfg.ShutdownGrace))
	var toRelease []outbox.Held
drain:
	for {
		select {
		case ev := <-work:
			toRelease = append(toRelease, outbox.Held{ID: ev.ID, Attempt: ev.Attempt})
		default:
			break drain
		}
	}
	r.release(bg, toRelease)

	// Let sends in flight finish within the grace period.
	sendersDone := make(chan struct{})
	go func() { senders.Wait(); close(sendersDone) }()
	grace := time.NewTimer(r.cfg.ShutdownGrace)
	select {
	case <-sendersDone:
		grace.Stop()
	case <-grace.C:
		r.log.Warn("shutdown grace expired: abandoning sends in flight (their rows will be re-sent after lease expiry)")
		cancelSends()
		<-sendersDone
	}
	// Senders that stopped before sending (rate-limit wait) hand back rows.
	for {
		select {
		case ev := <-work:
			unsent = append(unsent, outbox.Held{ID: ev.ID, Attempt: ev.Attempt})
			continue
		default:
		}
		break
	}
	r.release(bg, unsent)

	close(results)
	<-recorderDone
	stopUpkeep()
	upkeep.Wait()
	s := r.Stats()
	r.log.Info("relay stopped", slog.Int64("delivered", s.Delivered), slog.Int64("retried", s.Retried),
		slog.Int64("dead", s.Dead), slog.Int64("released", s.Released), slog.Int64("unrecorded", s.Unrecorded))
	return nil
}

// release gives rows back and forgets them; failures leave them to lease rescue.
func (r *Relay) release(ctx context.Context, held []outbox.Held) {
	if len(held) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := r.store.Release(ctx, r.cfg.RelayID, held)
	if err != nil {
		r.log.Error("release unsent rows failed; they will be claimable when their lease expires", slog.Int("rows", len(held)), slog.Any("error", err))
	} else {
		r.stats.released.Add(n)
		r.m.Released.Add(float64(n))
	}
	ids := make([]int64, len(held))
	for i, h := range held {
		ids[i] = h.ID
	}
	r.forget(ids)
}

func (r *Relay) forget(ids []int64) {
	r.mu.Lock()
	for _, id := range ids {
		if _, ok := r.held[id]; ok {
			delete(r.held, id)
			delete(r.leaseFrom, id)
			r.outstanding--
		}
	}
	r.mu.Unlock()
	select {
	case r.freed <- struct{}{}:
	default:
	}
}

// claimLoop claims while ctx is live and there is room in the pipeline.
func (r *Relay) claimLoop(ctx, bg context.Context, work chan<- outbox.Event) {
	var consecutiveErrors int
	idleWait := r.cfg.PollInterval
	poll := time.NewTimer(0)
	defer poll.Stop()
	<-poll.C
	for ctx.Err() == nil {
		r.mu.Lock()
		room := r.maxOutstanding() - r.outstanding
		r.mu.Unlock()
		want := min(room, r.cfg.BatchSize)
		limit, wait := r.breaker.claimLimit()
		r.m.Breaker.Set(float64(r.breaker.State()))
		if limit == 0 {
			// Breaker open: Paragon is failing for everyone; claim nothing.
			if !sleep(ctx, min(wait, r.cfg.PollInterval*4+wait/2)) {
				return
			}
			continue
		}
		if limit == 1 {
			want = 1 // half-open: one probe
		} else if want < max(1, r.cfg.BatchSize/4) && room < r.maxOutstanding() {
			// Pipeline is full: wait until results are recorded.
			select {
			case <-ctx.Done():
				return
			case <-r.freed:
			}
			continue
		}
		// The claim runs on bg so that a shutdown never cancels a claim the
		// database already committed (its rows would then wait out the lease).
		t0 := time.Now()
		evs, err := r.store.Claim(bg, r.cfg.RelayID, want, r.cfg.Lease)
		r.log.Debug("claimed", slog.Int("want", want), slog.Int("got", len(evs)), slog.Duration("took", time.Since(t0)))
		if err != nil {
			consecutiveErrors++
			r.m.DBErrors.WithLabelValues("claim").Inc()
			d := Backoff(int32(consecutiveErrors), 100*time.Millisecond, 10*time.Second, rand.Float64())
			r.logErr("claim failed; backing off", err, consecutiveErrors, slog.Duration("backoff", d))
			if !sleep(ctx, d) {
				return
			}
			continue
		}
		consecutiveErrors = 0
		if len(evs) > 0 {
			if limit == 1 {
				r.breaker.claimedProbe(evs[0].ID)
				r.log.Info("circuit breaker half-open: sending one probe", slog.Int64("outbox_id", evs[0].ID))
			}
			r.m.ClaimBatch.Observe(float64(len(evs)))
			r.stats.claimed.Add(int64(len(evs)))
			r.mu.Lock()
			for _, e := range evs {
				r.held[e.ID] = e.Attempt
				r.leaseFrom[e.ID] = e.LeaseFrom
			}
			r.outstanding += len(evs)
			r.mu.Unlock()
			for _, e := range evs {
				work <- e // never blocks: capacity is maxOutstanding
			}
		}
		if len(evs) < want {
			// Adaptive polling: while events keep arriving, look again after
			// MinPollInterval (low latency from commit to delivery); each empty
			// claim doubles the wait up to PollInterval (cheap when idle).
			if len(evs) > 0 {
				idleWait = r.cfg.MinPollInterval
			} else {
				idleWait = min(max(idleWait*2, r.cfg.MinPollInterval), r.cfg.PollInterval)
			}
			poll.Reset(idleWait)
			select {
			case <-ctx.Done():
				return
			case <-poll.C:
			case <-r.kick:
				// A keyed event was delivered: the next event of its key
				// is pending now; claim it without waiting out the poll.
				idleWait = r.cfg.MinPollInterval
				if !poll.Stop() {
					select {
					case <-poll.C:
					default:
					}
				}
			}
		}
	}
}

func (r *Relay) sendLoop(ctx context.Context, stop <-chan struct{}, work <-chan outbox.Event, results chan<- outbox.Result, giveBack func(outbox.Held)) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		var ev outbox.Event
		select {
		case <-stop:
			return
		case ev = <-work:
		}
		if !r.breaker.allowSend(ev.ID) {
			probe, ok := r.handBack(ev, work)
			if !ok {
				continue
			}
			ev = probe
		}
		if r.limiter != nil {
			t0 := time.Now()
			wctx, cancel := context.WithCancel(ctx)
			go func() {
				select {
				case <-stop:
					cancel()
				case <-wctx.Done():
				}
			}()
			err := r.limiter.Wait(wctx)
			cancel()
			r.m.RateLimitWaitSeconds.Observe(time.Since(t0).Seconds())
			if err != nil {
				giveBack(outbox.Held{ID: ev.ID, Attempt: ev.Attempt})
				continue
			}
		}
		res, sent := r.sendWithinLease(ctx, ev)
		if !sent {
			continue
		}
		if res.Status != 0 || res.Outcome != paragon.Rejected {
			r.m.AttemptSeconds.Observe(res.Finished.Sub(res.Started).Seconds())
		}
		if r.breaker.record(ev.ID, ev.UserID, res) {
			r.m.BreakerTrips.Inc()
			r.log.Warn("circuit breaker open: Paragon is failing for many users; pausing claims and probing",
				slog.Int("status", res.Status), slog.Any("error", res.Err))
		}
		results <- r.decide(ev, res)
	}
}

// leaseEnd is when ev's lease may end at the earliest, on this process's
// clock (zero when the row is no longer held).
func (r *Relay) leaseEnd(id int64) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	from, ok := r.leaseFrom[id]
	if !ok {
		return time.Time{}
	}
	return from.Add(r.cfg.Lease)
}

// sendWithinLease sends ev only while this relay's lease on it lasts, and
// cancels the request if the lease may end before the answer (the lease
// extender moves the end while the relay can reach the database). After
// the lease the row may be rescued and re-sent by another relay: a copy of
// an earlier event of an ordering key must never reach Paragon after a
// later event of the key did. The end is measured on this process's clock
// from just before the claim or extension statement was sent, so it falls
// before the lease's expiry in the database. A row whose lease already
// ended is given back unsent (sent is false).
func (r *Relay) sendWithinLease(ctx context.Context, ev outbox.Event) (res paragon.Result, sent bool) {
	if !time.Now().Before(r.leaseEnd(ev.ID)) {
		r.log.Warn("lease ended before the send: giving the event back unsent", slog.Int64("outbox_id", ev.ID))
		r.release(context.WithoutCancel(ctx), []outbox.Held{{ID: ev.ID, Attempt: ev.Attempt}})
		return res, false
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	var timer *time.Timer
	var watch func()
	watch = func() {
		mu.Lock()
		defer mu.Unlock()
		if d := time.Until(r.leaseEnd(ev.ID)); d > 0 {
			timer = time.AfterFunc(d, watch)
			return
		}
		cancel()
	}
	mu.Lock()
	timer = time.AfterFunc(time.Until(r.leaseEnd(ev.ID)), watch)
	mu.Unlock()
	res = r.sender.Send(sctx, paragon.Event{Name: ev.Name, UserID: ev.UserID, Payload: ev.Payload})
	mu.Lock()
	timer.Stop()
	mu.Unlock()
	return res, true
}

// handBack releases ev, and the other rows waiting in work, without spending
// their attempts: the breaker is open, so sending them now would only burn
// attempts against an outage. If it meets the half-open probe among them it
// returns it (ok) for the caller to send.
func (r *Relay) handBack(ev outbox.Event, work <-chan outbox.Event) (probe outbox.Event, ok bool) {
	held := []outbox.Held{{ID: ev.ID, Attempt: ev.Attempt}}
	for len(held) < r.cfg.BatchSize {
		var e outbox.Event
		select {
		case e = <-work:
		default:
		}
		if e.ID == 0 {
			break
		}
		if !ok && r.breaker.allowSend(e.ID) {
			probe, ok = e, true
			continue
		}
		held = append(held, outbox.Held{ID: e.ID, Attempt: e.Attempt})
	}
	r.release(context.Background(), held)
	return probe, ok
}

// decide turns a send result into the row's next state.
func (r *Relay) decide(ev outbox.Event, res paragon.Result) outbox.Result {
	out := outbox.Result{ID: ev.ID, Attempt: ev.Attempt, HTTPStatus: res.Status, Started: res.Started, Finished: res.Finished, Keyed: ev.Keyed}
	if res.Err != nil {
		out.Error = res.Err.Error()
	}
	switch res.Outcome {
	case paragon.Delivered:
		out.Outcome = outbox.OutcomeDelivered
	case paragon.Rejected:
		out.Outcome = outbox.OutcomeDead
		out.Error = "rejected, not retried: " + out.Error
	default:
		// 401/403/404 mean the relay's configuration is wrong (key, project,
		// URL); that is never the event's fault, so it never exhausts
		// attempts. Nor does a failure while the breaker is open (an outage).
		configProblem := res.Status == 401 || res.Status == 403 || res.Status == 404
		shuttingDown := r.stopping.Load() && errors.Is(res.Err, context.Canceled)
		out.Uncounted = configProblem || r.breaker.isOpen() || shuttingDown
		if int(ev.Attempt-ev.AttemptsBase) >= r.cfg.MaxAttempts && !out.Uncounted {
			out.Outcome = outbox.OutcomeDead
			out.Error = fmt.Sprintf("gave up after %d attempts: %s", ev.Attempt-ev.AttemptsBase, out.Error)
		} else {
			out.Outcome = outbox.OutcomeRetry
			d := Backoff(ev.Attempt-ev.AttemptsBase, r.cfg.BackoffBase, r.cfg.BackoffMax, rand.Float64())
			out.RetryDelay = max(d, res.RetryAfter)
		}
	}
	return out
}

// recordLoop writes results in batches: it blocks for one result, then takes
// whatever else is already waiting (up to BatchSize) and records them in one
// statement, so batches grow with load and latency stays low when idle.
func (r *Relay) recordLoop(ctx context.Context, results <-chan outbox.Result) {
	buf := make([]outbox.Result, 0, r.cfg.BatchSize)
	for {
		res, ok := <-results
		if !ok {
			return
		}
		buf = append(buf[:0], res)
	more:
		for len(buf) < r.cfg.BatchSize {
			select {
			case res, ok := <-results:
				if !ok {
					break more
				}
				buf = append(buf, res)
			default:
				break more
			}
		}
		r.flush(ctx, buf)
	}
}

// flush records buf, retrying through database outages. It gives up only
// once every row's lease has certainly expired (they are then rescued and
// re-sent by some relay, which is the at-least-once path).
func (r *Relay) flush(ctx context.Context, buf []outbox.Result) {
	deadline := time.Now().Add(r.cfg.Lease)
	for attempt := 1; ; attempt++ {
		t0 := time.Now()
		moved, err := r.store.Record(ctx, r.cfg.RelayID, buf)
		if err == nil {
			r.log.Debug("recorded", slog.Int("results", len(buf)), slog.Duration("took", time.Since(t0)))
			r.count(buf, moved)
			r.kickIfPromoted(buf, moved)
			break
		}
		r.m.DBErrors.WithLabelValues("record").Inc()
		if time.Now().After(deadline) || ctx.Err() != nil {
			r.stats.unrecorded.Add(int64(len(buf)))
			r.m.Unrecorded.Add(float64(len(buf)))
			r.log.Error("could not record attempt results; their rows will be re-sent after lease expiry",
				slog.Int("results", len(buf)), slog.Any("error", err))
			break
		}
		d := Backoff(int32(attempt), 100*time.Millisecond, 5*time.Second, rand.Float64())
		r.logErr("record results failed; retrying", err, attempt, slog.Duration("backoff", d))
		if !sleep(ctx, d) {
			r.stats.unrecorded.Add(int64(len(buf)))
			r.m.Unrecorded.Add(float64(len(buf)))
			break
		}
	}
	ids := make([]int64, len(buf))
	for i, b := range buf {
		ids[i] = b.ID
	}
	r.forget(ids)
}

// kickIfPromoted wakes the claim loop when a recorded delivery of a keyed
// event may have made the next event of its key pending (record_results
// promotes it): events of one key go one at a time, and waiting out the
// idle poll between them would make each key as slow as the poll interval.
func (r *Relay) kickIfPromoted(buf []outbox.Result, moved []int64) {
	for _, b := range buf {
		if b.Keyed && b.Outcome == outbox.OutcomeDelivered && slices.Contains(moved, b.ID) {
			select {
			case r.kick <- struct{}{}:
			default:
			}
			return
		}
	}
}

func (r *Relay) count(buf []outbox.Result, moved []int64) {
	movedSet := make(map[int64]struct{}, len(moved))
	for _, id := range moved {
		movedSet[id] = struct{}{}
	}
	for _, b := range buf {
		r.m.Attempts.WithLabelValues(string(b.Outcome), statusLabel(b.HTTPStatus)).Inc()
		if _, ok := movedSet[b.ID]; !ok {
			r.stats.lost.Add(1)
			r.m.LostLeases.Inc()
			r.log.Warn("attempt result arrived after the row moved on (lease lost); the event may be delivered twice",
				slog.Int64("outbox_id", b.ID), slog.Int("attempt", int(b.Attempt)), slog.String("outcome", string(b.Outcome)))
			continue
		}
		switch b.Outcome {
		case outbox.OutcomeDelivered:
			r.stats.delivered.Add(1)
		case outbox.OutcomeRetry:
			r.stats.retried.Add(1)
			r.retrySummary.n++
			r.retrySummary.lastErr, r.retrySummary.lastStatus = b.Error, b.HTTPStatus
			if b.HTTPStatus == 401 || b.HTTPStatus == 403 {
				r.retrySummary.auth++
			}
		case outbox.OutcomeDead:
			r.stats.dead.Add(1)
			r.log.Warn("event is dead: it will not be retried until an operator re-drives it (outbox-relay retry)",
				slog.Int64("outbox_id", b.ID), slog.Int("attempt", int(b.Attempt)), slog.Int("http_status", b.HTTPStatus), slog.String("error", b.Error))
		}
	}
	// Failures that will be retried are logged at most once per 30 s, the
	// first at once, the rest summarised (an outage would flood the log).
	if rs := &r.retrySummary; rs.n > 0 && time.Since(rs.lastLog) >= 30*time.Second {
		msg := "attempts failed and will be retried"
		if rs.auth > 0 {
			msg = "Paragon refused the relay's tokens (401/403): check PARAGON_SIGNING_KEY and PARAGON_PROJECT_ID; attempts will be retried"
		}
		r.log.Warn(msg, slog.Int("failed_attempts", rs.n), slog.Int("auth_failures", rs.auth),
			slog.Duration("over", time.Since(rs.since).Round(time.Second)), slog.Int("last_http_status", rs.lastStatus), slog.String("last_error", rs.lastErr))
		*rs = retrySummary{since: time.Now(), lastLog: time.Now()}
	} else if rs.n == 0 {
		rs.since = time.Now()
	}
}

// retrySummary accumulates retryable failures between two log lines. Only
// the recorder goroutine touches it.
type retrySummary struct {
	since      time.Time // start of the period summarised
	lastLog    time.Time
	n, auth    int
	lastErr    string
	lastStatus int
}

// leaseLoop extends the lease of every held row each Lease/3.
func (r *Relay) leaseLoop(ctx context.Context) {
	t := time.NewTicker(r.cfg.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.mu.Lock()
		ids := make([]int64, 0, len(r.held))
		for id := range r.held {
			ids = append(ids, id)
		}
		r.mu.Unlock()
		from := time.Now()
		if ext, err := r.store.ExtendLeasesOf(ctx, r.cfg.RelayID, ids, r.cfg.Lease); err == nil {
			r.mu.Lock()
			for _, id := range ext {
				if _, ok := r.leaseFrom[id]; ok {
					r.leaseFrom[id] = from
				}
			}
			r.mu.Unlock()
		} else if ctx.Err() == nil {
			r.m.DBErrors.WithLabelValues("extend_leases").Inc()
			r.log.Warn("extend leases failed", slog.Int("rows", len(ids)), slog.Any("error", err))
		}
	}
}

// gaugeLoop refreshes the backlog gauges every GaugeInterval.
func (r *Relay) gaugeLoop(ctx context.Context) {
	t := time.NewTicker(r.cfg.GaugeInterval)
	defer t.Stop()
	for {
		g, err := r.store.ReadGauges(ctx)
		if err == nil {
			r.m.Pending.Set(float64(g.Pending))
			r.m.InFlight.Set(float64(g.InFlight))
			r.m.Dead.Set(float64(g.Dead))
			r.m.OldestPendingSeconds.Set(g.OldestPendingSeconds)
			r.m.BlockedKeys.Set(float64(g.BlockedKeys))
			r.m.OldestBlockedKeySeconds.Set(g.OldestBlockedKeySeconds)
		} else if ctx.Err() == nil {
			r.m.DBErrors.WithLabelValues("gauges").Inc()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// promoteLoop sweeps ordering keys every PromoteInterval for waiting events
// that nothing blocks any more (see sql/queries/promote_waiting.sql). Each tick
// visits up to 10 × PromoteKeys keys and the next tick continues where it
// stopped, so the sweep's cost per second is bounded however many keys
// there are (a pass over K keys takes K / (10 × PromoteKeys) ticks).
func (r *Relay) promoteLoop(ctx context.Context) {
	t := time.NewTicker(r.cfg.PromoteInterval)
	defer t.Stop()
	cursor := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for range 10 {
			n, next, err := r.store.PromoteWaiting(ctx, cursor, r.cfg.PromoteKeys)
			if err != nil {
				if ctx.Err() == nil {
					r.m.DBErrors.WithLabelValues("promote_waiting").Inc()
					r.log.Warn("promotion sweep of waiting events failed", slog.Any("error", err))
				}
				break
			}
			if n > 0 {
				r.log.Debug("promoted waiting events", slog.Int64("events", n))
			}
			cursor = next
			if next == "" {
				break
			}
		}
	}
}

// rescueLoop makes rows of dead relays claimable again.
func (r *Relay) rescueLoop(ctx context.Context) {
	t := time.NewTicker(r.cfg.RescueInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for {
			ids, err := r.store.RescueExpired(ctx, 1000, r.cfg.MaxAttempts)
			if err != nil {
				if ctx.Err() == nil {
					r.log.Warn("rescue of expired leases failed", slog.Any("error", err))
				}
				break
			}
			if len(ids) > 0 {
				r.stats.rescued.Add(int64(len(ids)))
				r.m.Rescued.Add(float64(len(ids)))
				r.log.Warn("rescued rows whose lease expired (their relay died or lost the database)", slog.Int("rows", len(ids)))
			}
			if len(ids) < 1000 {
				break
			}
		}
	}
}

func (r *Relay) logErr(msg string, err error, consecutive int, attrs ...any) {
	// Log the first error and then every 10th, so an outage does not flood logs.
	if consecutive == 1 || consecutive%10 == 0 {
		r.log.Error(msg, append([]any{slog.Any("error", err), slog.Int("consecutive_errors", consecutive)}, attrs...)...)
	}
}

// Backoff returns the delay before attempt+1 after attempt failed: base
// doubled per attempt, capped at max, with "equal jitter" (half fixed, half
// random, from rnd in [0,1)). It cannot overflow: doubling stops at max.
func Backoff(attempt int32, base, maxDelay time.Duration, rnd float64) time.Duration {
	d := base
	for i := int32(1); i < attempt && d < maxDelay; i++ {
		d *= 2
	}
	if d > maxDelay || d <= 0 {
		d = maxDelay
	}
	half := d / 2
	return half + time.Duration(rnd*float64(d-half))
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
