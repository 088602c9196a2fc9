package relay

import (
	"sync"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/paragon"
)

// Breaker states.
const (
	BreakerClosed   = 0 // sending normally
	BreakerOpen     = 1 // not claiming or sending; waiting out the cool-down
	BreakerHalfOpen = 2 // one probe event allowed through
)

// breaker stops the relay from spending every event's attempts while Paragon
// is down or refuses the relay's credentials (an outage, a rotated signing
// key giving 401 everywhere). It trips after threshold consecutive systemic
// failures (paragon.Result.Systemic: 5xx, 429, 401/403/404, timeouts,
// network errors), whichever Connected Users they belong to: a backlog of one
// user's events must not die of an outage either. Any success or content
// rejection (Paragon answered about the event itself) resets it. Attempts
// that fail while it is not closed do not count toward max attempts.
//
// Open: the relay claims nothing and hands back unsent claimed rows without
// spending their attempt. After the cool-down (doubling from minCooldown to
// maxCooldown while probes keep failing) one probe event is sent; success
// closes the breaker, a systemic failure re-opens it.
type breaker struct {
	mu          sync.Mutex
	state       int
	threshold   int
	streak      int
	openedAt    time.Time
	cooldown    time.Duration
	minCooldown time.Duration
	maxCooldown time.Duration
	probeID     int64 // outbox id of the probe in half-open; 0 = none yet
	trips       int64
	now         func() time.Time
}

func newBreaker(threshold int, minCooldown, maxCooldown time.Duration) *breaker {
	return &breaker{threshold: threshold, minCooldown: minCooldown, maxCooldown: maxCooldown,
		cooldown: minCooldown, now: time.Now}
}

// claimLimit says how many rows the claimer may take now: -1 for no limit,
// 0 for none (wait is how long until that may change), 1 for a probe.
func (b *breaker) claimLimit() (limit int, wait time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case BreakerClosed:
		return -1, 0
	case BreakerOpen:
		if left := b.cooldown - b.now().Sub(b.openedAt); left > 0 {
			return 0, left
		}
		b.state, b.probeID = BreakerHalfOpen, 0
		return 1, 0
	default: // half-open
		if b.probeID == 0 {
			return 1, 0
		}
		return 0, b.minCooldown
	}
}

// claimedProbe notes the outbox id of the event that will probe.
func (b *breaker) claimedProbe(id int64) {
	b.mu.Lock()
	if b.state == BreakerHalfOpen && b.probeID == 0 {
		b.probeID = id
	}
	b.mu.Unlock()
}

// allowSend reports whether the event with this outbox id may be sent now.
func (b *breaker) allowSend(id int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case BreakerClosed:
		return true
	case BreakerHalfOpen:
		return id == b.probeID
	}
	return false
}

// isOpen reports whether a failure now happens while the breaker is not
// closed (such failures never exhaust an event's attempts).
func (b *breaker) isOpen() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state != BreakerClosed
}

// record feeds one send result; it returns true when this result tripped
// the breaker open.
func (b *breaker) record(id int64, user string, res paragon.Result) (tripped bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !res.Systemic {
		// Paragon answered about the event itself: it is up and accepts us.
		b.streak = 0
		if b.state != BreakerClosed && (b.state == BreakerOpen || id == b.probeID || b.probeID == 0) {
			b.state, b.cooldown, b.probeID = BreakerClosed, b.minCooldown, 0
		}
		return false
	}
	switch b.state {
	case BreakerHalfOpen:
		if id == b.probeID {
			b.cooldown = min(b.cooldown*2, b.maxCooldown)
			b.state, b.openedAt, b.probeID = BreakerOpen, b.now(), 0
			return true
		}
		return false
	case BreakerOpen:
		return false
	}
	b.streak++
	if b.streak >= b.threshold {
		b.state, b.openedAt, b.cooldown, b.probeID = BreakerOpen, b.now(), b.minCooldown, 0
		b.streak = 0
		b.trips++
		return true
	}
	return false
}

// State returns the current state (BreakerClosed, BreakerOpen, BreakerHalfOpen).
func (b *breaker) State() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}
