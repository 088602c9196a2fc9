package relay

// Health is what a relay reports about itself in its heartbeat row
// (internal/heartbeat, table outbox_relays).
type Health struct {
	// Breaker is the circuit breaker's state: "closed", "open" or "half-open".
	Breaker string
	// InFlight counts events this relay has claimed and not yet recorded
	// (being sent, waiting to be sent, or waiting to be recorded).
	InFlight int
}

// Health returns a snapshot of the relay's breaker state and in-flight count.
// Safe to call from any goroutine, before, during and after Run.
func (r *Relay) Health() Health {
	r.mu.Lock()
	n := r.outstanding
	r.mu.Unlock()
	return Health{Breaker: BreakerStateName(r.breaker.State()), InFlight: max(n, 0)}
}

// BreakerStateName names a breaker state (BreakerClosed, BreakerOpen,
// BreakerHalfOpen) as stored in outbox_relays.breaker_state.
func BreakerStateName(state int) string {
	switch state {
	case BreakerOpen:
		return "open"
	case BreakerHalfOpen:
		return "half-open"
	default:
		return "closed"
	}
}

// ID returns the relay's id (Config.RelayID), as it appears in lease_owner,
// outbox_attempts.relay_id and outbox_relays.
func (r *Relay) ID() string { return r.cfg.RelayID }
