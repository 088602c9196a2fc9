package relay

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/backoff"
	"github.com/paragon-outbox/outbox-relay/internal/outbox"
	"github.com/paragon-outbox/outbox-relay/internal/paragon"
	"github.com/paragon-outbox/outbox-relay/internal/startstop"
)

// maxOutstanding bounds rows claimed but not yet recorded: enough to keep
// every sender busy while the next batch is claimed and the last recorded.
func (r *Relay) maxOutstanding() int { return r.cfg.Concurrency + 2*r.cfg.BatchSize }

// run is the pipeline from Start to the end of the graceful shutdown.
func (r *Relay) run(ctx context.Context) {
	// Claiming ends when ctx ends or Stop is called.
	claimCtx, stopClaims := context.WithCancel(ctx)
	defer stopClaims()
	go func() {
		select {
		case <-r.stopReq:
			stopClaims()
		case <-claimCtx.Done():
		}
	}()

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

	for _, s := range r.services {
		_ = s.Start(bg) // the relay's own services never fail to start
	}

	r.claimLoop(claimCtx, bg, work)

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

	// Let sends in flight finish within the grace period (and within the
	// context of Stop, if it ends first).
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
	case <-r.graceCut:
		grace.Stop()
		r.abandonedBy.Store(true)
		r.log.Warn("shutdown cut short by the caller: abandoning sends in flight (their rows will be retried)")
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
	r.failures.close()
	startstop.StopAll(r.services...)
	s := r.Stats()
	r.log.Info("relay stopped", slog.Int64("delivered", s.Delivered), slog.Int64("retried", s.Retried),
		slog.Int64("dead", s.Dead), slog.Int64("released", s.Released), slog.Int64("unrecorded", s.Unrecorded))
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
			if !backoff.Sleep(ctx, min(wait, r.cfg.PollInterval*4+wait/2)) {
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
			d := backoff.Jittered(int32(consecutiveErrors), 100*time.Millisecond, 10*time.Second)
			r.logErr("claim failed; backing off", err, consecutiveErrors, slog.Duration("backoff", d))
			if !backoff.Sleep(ctx, d) {
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
			r.log.Warn("circuit breaker open: consecutive systemic failures (network, timeout, 5xx, 429, 401/403/404; any users) reached the threshold; pausing claims and probing",
				slog.Int("consecutive_failures", r.breaker.threshold), slog.Int("status", res.Status), slog.Any("error", res.Err))
		}
		results <- r.policy.Decide(ev, res, Conditions{BreakerOpen: r.breaker.isOpen(), Stopping: r.stopping.Load()})
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
		d := backoff.Jittered(int32(attempt), 100*time.Millisecond, 5*time.Second)
		r.logErr("record results failed; retrying", err, attempt, slog.Duration("backoff", d))
		if !backoff.Sleep(ctx, d) {
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
			r.failures.add(b.HTTPStatus, b.Error)
		case outbox.OutcomeDead:
			r.stats.dead.Add(1)
			r.log.Warn("event is dead: it will not be retried until an operator re-drives it (outbox-relay retry)",
				slog.Int64("outbox_id", b.ID), slog.Int("attempt", int(b.Attempt)), slog.Int("http_status", b.HTTPStatus), slog.String("error", b.Error))
		}
	}
	// Failures that will be retried are summarised, at most once per 30 s
	// (an outage would flood the log); see failureSummary.
	r.failures.flushIfDue()
}
