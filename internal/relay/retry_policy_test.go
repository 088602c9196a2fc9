package relay_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/outbox"
	"github.com/paragon-outbox/outbox-relay/internal/paragon"
	"github.com/paragon-outbox/outbox-relay/internal/relay"
)

// TestRetryPolicyFollowsTheReliabilityTable checks each row of
// docs/RELIABILITY.md "Which responses spend attempts".
func TestRetryPolicyFollowsTheReliabilityTable(t *testing.T) {
	p := relay.RetryPolicy{MaxAttempts: 3, BackoffBase: time.Second, BackoffMax: time.Minute, Rand: func() float64 { return 0 }}
	retry := func(status int, err error) paragon.Result {
		return paragon.Result{Outcome: paragon.Retry, Status: status, Err: err, Systemic: true}
	}
	canceled := context.Canceled
	for _, tc := range []struct {
		name      string
		attempt   int32 // ev.Attempt; AttemptsBase below
		base      int32
		res       paragon.Result
		c         relay.Conditions
		outcome   outbox.Outcome
		uncounted bool
		delay     time.Duration // RetryDelay when retried
		errPrefix string
	}{
		{name: "2xx delivered", attempt: 1, res: paragon.Result{Outcome: paragon.Delivered, Status: 201}, outcome: outbox.OutcomeDelivered},
		{name: "400 dead at once", attempt: 1, res: paragon.Result{Outcome: paragon.Rejected, Status: 400, Err: errors.New("HTTP 400")},
			outcome: outbox.OutcomeDead, errPrefix: "rejected, not retried: HTTP 400"},
		{name: "payload over the limit: dead at once, not sent", attempt: 1,
			res:     paragon.Result{Outcome: paragon.Rejected, NotSent: true, Err: errors.New("payload is 300000 bytes, over the 262144-byte limit")},
			outcome: outbox.OutcomeDead, errPrefix: "not sent: payload is 300000 bytes"},
		{name: "500 retried and counted", attempt: 1, res: retry(500, errors.New("HTTP 500")), outcome: outbox.OutcomeRetry, delay: 500 * time.Millisecond},
		{name: "backoff doubles per counted attempt", attempt: 2, res: retry(500, nil), outcome: outbox.OutcomeRetry, delay: time.Second},
		{name: "Retry-After wins when longer", attempt: 1, res: paragon.Result{Outcome: paragon.Retry, Status: 429, RetryAfter: 7 * time.Second},
			outcome: outbox.OutcomeRetry, delay: 7 * time.Second},
		{name: "backoff wins over a shorter Retry-After", attempt: 2, res: paragon.Result{Outcome: paragon.Retry, Status: 429, RetryAfter: time.Millisecond},
			outcome: outbox.OutcomeRetry, delay: time.Second},
		{name: "500 on the last counted attempt goes dead", attempt: 3, res: retry(500, errors.New("HTTP 500")),
			outcome: outbox.OutcomeDead, errPrefix: "gave up after 3 attempts: HTTP 500"},
		{name: "only attempts since the last re-drive count", attempt: 5, base: 3, res: retry(500, nil), outcome: outbox.OutcomeRetry, delay: time.Second},
		{name: "401 never counts, even past max", attempt: 9, res: retry(401, nil), outcome: outbox.OutcomeRetry, uncounted: true, delay: time.Minute / 2},
		{name: "403 never counts", attempt: 3, res: retry(403, nil), outcome: outbox.OutcomeRetry, uncounted: true},
		{name: "404 never counts", attempt: 3, res: retry(404, nil), outcome: outbox.OutcomeRetry, uncounted: true},
		{name: "failure while the breaker is open does not count", attempt: 3, res: retry(503, nil), c: relay.Conditions{BreakerOpen: true},
			outcome: outbox.OutcomeRetry, uncounted: true},
		{name: "send cut off by shutdown does not count", attempt: 3, res: retry(0, canceled), c: relay.Conditions{Stopping: true},
			outcome: outbox.OutcomeRetry, uncounted: true},
		{name: "cancellation without shutdown counts", attempt: 3, res: retry(0, canceled), outcome: outbox.OutcomeDead, errPrefix: "gave up after 3 attempts"},
		{name: "a 500 during shutdown counts", attempt: 3, res: retry(500, nil), c: relay.Conditions{Stopping: true}, outcome: outbox.OutcomeDead},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := outbox.Event{ID: 42, Attempt: tc.attempt, AttemptsBase: tc.base}
			got := p.Decide(ev, tc.res, tc.c)
			if got.ID != 42 || got.Attempt != tc.attempt || got.HTTPStatus != tc.res.Status {
				t.Fatalf("Decide kept id/attempt/status as %d/%d/%d", got.ID, got.Attempt, got.HTTPStatus)
			}
			if got.Outcome != tc.outcome || got.Uncounted != tc.uncounted {
				t.Fatalf("outcome %s uncounted %v, want %s uncounted %v", got.Outcome, got.Uncounted, tc.outcome, tc.uncounted)
			}
			if tc.outcome == outbox.OutcomeRetry && tc.delay != 0 && got.RetryDelay != tc.delay {
				t.Errorf("retry delay %s, want %s", got.RetryDelay, tc.delay)
			}
			if !strings.HasPrefix(got.Error, tc.errPrefix) {
				t.Errorf("error %q, want prefix %q", got.Error, tc.errPrefix)
			}
		})
	}
}

// TestRetryPolicyDefaults: the zero policy uses 25 attempts and 1s..10m.
func TestRetryPolicyDefaults(t *testing.T) {
	var p relay.RetryPolicy
	res := paragon.Result{Outcome: paragon.Retry, Status: 500}
	if got := p.Decide(outbox.Event{Attempt: 24}, res, relay.Conditions{}); got.Outcome != outbox.OutcomeRetry {
		t.Fatalf("attempt 24 of the default 25: %s, want retry", got.Outcome)
	}
	if got := p.Decide(outbox.Event{Attempt: 25}, res, relay.Conditions{}); got.Outcome != outbox.OutcomeDead {
		t.Fatalf("attempt 25 of the default 25: %s, want dead", got.Outcome)
	}
	for a := int32(1); a < 40; a++ {
		if d := p.Backoff(a); d < relay.BackoffBaseDefault/2 || d > relay.BackoffMaxDefault {
			t.Fatalf("Backoff(%d) = %s, outside [0.5s, 10m]", a, d)
		}
	}
}

// TestGaveUpCountsAttemptsInWords: an event that goes dead after its only
// attempt says "after 1 attempt", not "after 1 attempts".
func TestGaveUpCountsAttemptsInWords(t *testing.T) {
	p := relay.RetryPolicy{MaxAttempts: 1, BackoffBase: time.Second, BackoffMax: time.Minute, Rand: func() float64 { return 0 }}
	res := paragon.Result{Outcome: paragon.Retry, Status: 500, Err: errors.New("HTTP 500"), Systemic: true}
	got := p.Decide(outbox.Event{ID: 1, Attempt: 1}, res, relay.Conditions{})
	if got.Outcome != outbox.OutcomeDead || !strings.HasPrefix(got.Error, "gave up after 1 attempt: HTTP 500") {
		t.Fatalf("outcome %s, error %q; want dead, gave up after 1 attempt: HTTP 500", got.Outcome, got.Error)
	}
}
