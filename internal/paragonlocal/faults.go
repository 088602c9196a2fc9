package paragonlocal

import (
	"math"
	"time"
)

const (
	// DefaultRetryAfter is the Retry-After value sent with injected 429s when
	// Faults.RetryAfter is empty: one second.
	DefaultRetryAfter = "1"
	// DefaultSlowDelay is Faults.SlowDelay when it is zero or negative.
	DefaultSlowDelay = 2 * time.Second
)

// Faults configures fault injection. Shares are probabilities in 0..1 (values
// outside are clamped; NaN is 0). One random draw (math/rand/v2) per request
// picks at most one fault, in this order: Drop, Fail500, Fail429, Slow; so the
// shares are exact when they sum to at most 1, and later ones are cut short
// when the sum exceeds 1. Faults are decided only after the request passed
// authentication and body validation, so a 401 or 400 stays what it is.
// Latency is not a share: it applies to every request.
// Faulted requests (except Slow ones, which go on normally after the delay)
// are not recorded. The zero value injects nothing.
type Faults struct {
	// Fail500 is the share of requests answered 500.
	Fail500 float64
	// Fail429 is the share answered 429 with a Retry-After header
	// (docs/PARAGON.md: treat 429 and 5xx as retryable, honour Retry-After).
	Fail429 float64
	// RetryAfter is the Retry-After header value on injected 429s, either
	// delay-seconds ("1") or an HTTP-date. Empty means DefaultRetryAfter ("1").
	RetryAfter string
	// Slow is the share of requests held for SlowDelay before being processed
	// normally (and answered 201 if nothing else fails). If the request's
	// context ends first, the request is answered 503 and not recorded.
	Slow float64
	// SlowDelay is how long Slow requests are held. Zero or negative means
	// DefaultSlowDelay (2 s).
	SlowDelay time.Duration
	// Drop is the share of requests whose connection is closed without any
	// response (hijacked and closed), so the client sees EOF or a reset.
	Drop float64
	// Latency is added to every request for the endpoint (after its body is
	// read, before authentication), simulating Paragon's response time. It
	// applies whatever the outcome (401, 400, 201, …) and honours request
	// cancellation like Slow. Requests answered 404 or 405 get no latency.
	// Zero (the default) or negative means none.
	Latency time.Duration
}

// faultState is a normalised Faults plus the cumulative thresholds for the
// single random draw.
type faultState struct {
	Faults
	retryAfter               []string
	cDrop, c500, c429, cSlow float64
	active                   bool
}

func clamp01(x float64) float64 {
	if math.IsNaN(x) || x < 0 {
		return 0
	}
	return min(x, 1)
}

func newFaultState(f Faults) *faultState {
	f.Fail500, f.Fail429 = clamp01(f.Fail500), clamp01(f.Fail429)
	f.Slow, f.Drop = clamp01(f.Slow), clamp01(f.Drop)
	if f.RetryAfter == "" {
		f.RetryAfter = DefaultRetryAfter
	}
	if f.SlowDelay <= 0 {
		f.SlowDelay = DefaultSlowDelay
	}
	if f.Latency < 0 {
		f.Latency = 0
	}
	st := &faultState{Faults: f, retryAfter: []string{f.RetryAfter}}
	st.cDrop = f.Drop
	st.c500 = st.cDrop + f.Fail500
	st.c429 = st.c500 + f.Fail429
	st.cSlow = st.c429 + f.Slow
	st.active = st.cSlow > 0
	return st
}

// SetFaults replaces the fault injection settings; it is safe to call while
// requests are being served and takes effect for requests that start after it.
// Values are normalised as documented on [Faults].
func (s *Server) SetFaults(f Faults) {
	s.faults.Store(newFaultState(f))
}

// Faults returns the current fault settings, normalised (defaults filled in,
// shares clamped to 0..1).
func (s *Server) Faults() Faults {
	return s.faults.Load().Faults
}
