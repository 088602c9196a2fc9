package relay

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the relay's Prometheus collectors. All names start with
// outbox_relay_. Create with NewMetrics and pass in Config.Metrics.
type Metrics struct {
	// Attempts counts finished attempts by outcome (delivered, retry, dead)
	// and HTTP status ("none" when no response arrived).
	Attempts *prometheus.CounterVec
	// AttemptSeconds is the duration of one HTTP exchange with Paragon.
	AttemptSeconds prometheus.Histogram
	// ClaimBatch is the number of rows each non-empty claim returned.
	ClaimBatch prometheus.Histogram
	// Released counts claimed rows handed back unsent (shutdown, breaker).
	Released prometheus.Counter
	// Rescued counts expired leases this relay made claimable again.
	Rescued prometheus.Counter
	// LostLeases counts results recorded after their row moved on.
	LostLeases prometheus.Counter
	// Unrecorded counts results that could not be written (database away
	// longer than the lease): their events will be sent again.
	Unrecorded prometheus.Counter
	// DBErrors counts failed database statements by operation.
	DBErrors *prometheus.CounterVec
	// Breaker is the circuit breaker state: 0 closed, 1 open, 2 half-open.
	Breaker prometheus.Gauge
	// BreakerTrips counts closed -> open transitions.
	BreakerTrips prometheus.Counter
	// RateLimitWaitSeconds is time spent waiting for the rate limiter.
	RateLimitWaitSeconds prometheus.Histogram
	// Outbox gauges, refreshed periodically from the database.
	Pending, InFlight, Dead prometheus.Gauge
	// OldestPendingSeconds is the age of the oldest undelivered event.
	OldestPendingSeconds prometheus.Gauge
	// BlockedKeys counts ordering keys whose first undelivered event is
	// dead (their later events wait); OldestBlockedKeySeconds is the age of
	// the oldest such dead event, 0 when none.
	BlockedKeys, OldestBlockedKeySeconds prometheus.Gauge
	// XminHorizonAgeSeconds is how long the oldest transaction holding back
	// this database's xmin horizon has been open (0: none with a start
	// time); XminHorizonXIDAge is the age in transactions of the oldest
	// xmin held (0: none). Set by the Horizon service.
	XminHorizonAgeSeconds, XminHorizonXIDAge prometheus.Gauge
	// DeadTuples are dead row versions by outbox table (label table), from
	// pg_stat_user_tables; set by the Horizon service.
	DeadTuples *prometheus.GaugeVec
}

// NewMetrics creates the collectors and registers them with reg (which may
// be nil to leave them unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outbox_relay_attempts_total", Help: "Finished delivery attempts by outcome and HTTP status.",
		}, []string{"outcome", "status"}),
		AttemptSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "outbox_relay_attempt_duration_seconds", Help: "Duration of one App Event request to Paragon.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}),
		ClaimBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "outbox_relay_claim_batch_size", Help: "Rows returned by each non-empty claim.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14),
		}),
		Released:   prometheus.NewCounter(prometheus.CounterOpts{Name: "outbox_relay_released_total", Help: "Claimed rows handed back unsent (shutdown, open breaker)."}),
		Rescued:    prometheus.NewCounter(prometheus.CounterOpts{Name: "outbox_relay_rescued_total", Help: "Expired leases made claimable again by this relay."}),
		LostLeases: prometheus.NewCounter(prometheus.CounterOpts{Name: "outbox_relay_lost_leases_total", Help: "Results that arrived after their row had moved on (possible duplicate delivery)."}),
		Unrecorded: prometheus.NewCounter(prometheus.CounterOpts{Name: "outbox_relay_unrecorded_results_total", Help: "Results that could not be written before their lease expired; the events will be re-sent."}),
		DBErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outbox_relay_db_errors_total", Help: "Failed database statements by operation.",
		}, []string{"op"}),
		Breaker:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "outbox_relay_circuit_breaker_state", Help: "0 closed, 1 open, 2 half-open."}),
		BreakerTrips: prometheus.NewCounter(prometheus.CounterOpts{Name: "outbox_relay_circuit_breaker_trips_total", Help: "Times the circuit breaker opened."}),
		RateLimitWaitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "outbox_relay_rate_limit_wait_seconds", Help: "Time sends waited for the rate limiter.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}),
		Pending:              prometheus.NewGauge(prometheus.GaugeOpts{Name: "outbox_relay_pending_events", Help: "Outbox rows in status pending."}),
		InFlight:             prometheus.NewGauge(prometheus.GaugeOpts{Name: "outbox_relay_in_flight_events", Help: "Outbox rows in status in_flight (all relays)."}),
		Dead:                 prometheus.NewGauge(prometheus.GaugeOpts{Name: "outbox_relay_dead_events", Help: "Outbox rows in status dead."}),
		OldestPendingSeconds: prometheus.NewGauge(prometheus.GaugeOpts{Name: "outbox_relay_oldest_pending_age_seconds", Help: "Age of the oldest pending or in-flight event."}),
		BlockedKeys: prometheus.NewGauge(prometheus.GaugeOpts{Name: "outbox_relay_blocked_keys",
			Help: "Ordering keys whose first undelivered event is dead: their later events wait (re-drive or skip the head)."}),
		OldestBlockedKeySeconds: prometheus.NewGauge(prometheus.GaugeOpts{Name: "outbox_relay_oldest_blocked_key_age_seconds",
			Help: "Age of the oldest dead event that blocks its ordering key; 0 when none."}),
		XminHorizonAgeSeconds: prometheus.NewGauge(prometheus.GaugeOpts{Name: "outbox_relay_xmin_horizon_age_seconds",
			Help: "How long the oldest transaction holding back this database's xmin horizon has been open (0: none with a start time)."}),
		XminHorizonXIDAge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "outbox_relay_xmin_horizon_xid_age",
			Help: "Age in transactions of the oldest xmin held (session, prepared transaction, replication slot or hot_standby_feedback); 0: none."}),
		DeadTuples: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "outbox_relay_dead_tuples",
			Help: "Dead row versions in the outbox tables (pg_stat_user_tables.n_dead_tup)."}, []string{"table"}),
	}
	if reg != nil {
		reg.MustRegister(m.Attempts, m.AttemptSeconds, m.ClaimBatch, m.Released, m.Rescued, m.LostLeases, m.Unrecorded,
			m.DBErrors, m.Breaker, m.BreakerTrips, m.RateLimitWaitSeconds, m.Pending, m.InFlight, m.Dead, m.OldestPendingSeconds,
			m.BlockedKeys, m.OldestBlockedKeySeconds, m.XminHorizonAgeSeconds, m.XminHorizonXIDAge, m.DeadTuples)
	}
	return m
}

func statusLabel(code int) string {
	if code == 0 {
		return "none"
	}
	return strconv.Itoa(code)
}
