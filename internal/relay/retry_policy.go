package relay

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/backoff"
	"github.com/paragon-outbox/outbox-relay/internal/config"
	"github.com/paragon-outbox/outbox-relay/internal/outbox"
	"github.com/paragon-outbox/outbox-relay/internal/paragon"
)

// RetryPolicy defaults (RELAY_MAX_ATTEMPTS, RELAY_BACKOFF_BASE,
// RELAY_BACKOFF_MAX).
const (
	MaxAttemptsDefault = config.DefaultMaxAttempts
	BackoffBaseDefault = config.DefaultBackoffBase
	BackoffMaxDefault  = config.DefaultBackoffMax
)

// RetryPolicy decides what one attempt's answer does to its outbox row:
// delivered, dead, or retried after a backoff, and whether the attempt
// counts toward MaxAttempts. It implements the table "Which responses spend
// attempts" of docs/RELIABILITY.md:
//
//   - 2xx: delivered.
//   - a rejection by Paragon (other 4xx): dead at once, error prefixed
//     "rejected, not retried: ".
//   - an event the relay refused to send (payload over the size limit or
//     not a JSON object, no token could be signed; paragon.Result.NotSent):
//     dead at once, error prefixed "not sent: ".
//   - 401, 403, 404 (token refused, wrong project or URL): retry, not
//     counted (a configuration problem must not kill events).
//   - any failure while the breaker is open or half-open: retry, not counted.
//   - a send cancelled because the relay is stopping: retry, not counted.
//   - any other failure (408, 425, 429, 5xx, timeout, network error): retry
//     after Backoff of the counted attempts, never sooner than Retry-After;
//     dead ("gave up after N attempts: …") once N = Attempt - AttemptsBase
//     reaches MaxAttempts.
//
// The zero value of a field means its default.
type RetryPolicy struct {
	// MaxAttempts: a counted retryable failure on this many counted
	// attempts makes the row dead. Default 25.
	MaxAttempts int
	// BackoffBase is the delay after the first counted failure; it doubles
	// per counted attempt (with equal jitter) up to BackoffMax. Defaults 1s
	// and 10m.
	BackoffBase, BackoffMax time.Duration
	// Rand returns the jitter in [0,1); nil uses math/rand/v2.
	Rand func() float64
}

// Conditions is what the relay knew when an attempt ended, besides the
// answer itself.
type Conditions struct {
	BreakerOpen bool // the circuit breaker was open or half-open (an outage)
	Stopping    bool // the relay was shutting down
}

// Decide turns the answer res to the attempt on ev into the row's next state.
func (p RetryPolicy) Decide(ev outbox.Event, res paragon.Result, c Conditions) outbox.Result {
	out := outbox.Result{ID: ev.ID, Attempt: ev.Attempt, HTTPStatus: res.Status, Started: res.Started, Finished: res.Finished, Keyed: ev.Keyed}
	if res.Err != nil {
		out.Error = res.Err.Error()
	}
	switch res.Outcome {
	case paragon.Delivered:
		out.Outcome = outbox.OutcomeDelivered
	case paragon.Rejected:
		out.Outcome = outbox.OutcomeDead
		if res.NotSent {
			out.Error = "not sent: " + out.Error
		} else {
			out.Error = "rejected, not retried: " + out.Error
		}
	default:
		// 401/403/404 mean the relay's configuration is wrong (key, project,
		// URL); that is never the event's fault, so it never exhausts
		// attempts. Nor does a failure while the breaker is open (an outage).
		configProblem := res.Status == 401 || res.Status == 403 || res.Status == 404
		shuttingDown := c.Stopping && errors.Is(res.Err, context.Canceled)
		out.Uncounted = configProblem || c.BreakerOpen || shuttingDown
		counted := ev.Attempt - ev.AttemptsBase
		if int(counted) >= p.maxAttempts() && !out.Uncounted {
			out.Outcome = outbox.OutcomeDead
			plural := "s"
			if counted == 1 {
				plural = ""
			}
			out.Error = fmt.Sprintf("gave up after %d attempt%s: %s", counted, plural, out.Error)
		} else {
			out.Outcome = outbox.OutcomeRetry
			d := p.Backoff(counted)
			out.RetryDelay = max(d, res.RetryAfter)
		}
	}
	return out
}

// Backoff is the delay before the next attempt after counted attempts
// failed: Backoff(counted, BackoffBase, BackoffMax, jitter).
func (p RetryPolicy) Backoff(counted int32) time.Duration {
	base, maxDelay := p.BackoffBase, p.BackoffMax
	if base <= 0 {
		base = BackoffBaseDefault
	}
	if maxDelay <= 0 {
		maxDelay = BackoffMaxDefault
	}
	rnd := rand.Float64
	if p.Rand != nil {
		rnd = p.Rand
	}
	return Backoff(counted, base, maxDelay, rnd())
}

func (p RetryPolicy) maxAttempts() int {
	if p.MaxAttempts <= 0 {
		return MaxAttemptsDefault
	}
	return p.MaxAttempts
}

// Backoff returns the delay before attempt+1 after attempt failed: base
// doubled per attempt, capped at max, with "equal jitter" (half fixed, half
// random, from rnd in [0,1)). It cannot overflow: doubling stops at max.
func Backoff(attempt int32, base, maxDelay time.Duration, rnd float64) time.Duration {
	return backoff.Delay(attempt, base, maxDelay, rnd)
}
