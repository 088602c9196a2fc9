// Package operatortest builds outbox rows in known states for tests of the
// operator tools (package operator, the operator SQL, the CLI). Rows are made
// the way production makes them, by inserting a lead (the trigger writes the
// event), and are then moved into the wanted state with UPDATEs, with an
// outbox_attempts row per attempt spent. Test use only.
package operatortest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Event describes one outbox event to create. Durations are relative to the
// database clock at creation (now()).
type Event struct {
	User   string // Connected User (leads.owner_id); required
	Status string // pending (default), in_flight, delivered or dead
	// Attempts is the attempts counter. One outbox_attempts row is written
	// for every attempt that has an outcome: all of them, except the last of
	// an in_flight event (still being sent). Attempts before the last failed
	// with LastError; the last one delivered (delivered) or failed with
	// LastError (pending, dead).
	Attempts   int
	LastError  string // last_error of pending/dead events with attempts; "" = NULL
	HTTPStatus int    // last_http_status and the failed attempts' http_status; 0 = NULL
	// CreatedAgo sets created_at to now() - CreatedAgo (default 1h); the
	// attempts are spread over the following seconds.
	CreatedAgo time.Duration
	// DeliveredAgo sets delivered_at of a delivered event to now() - DeliveredAgo.
	DeliveredAgo time.Duration
	// NextAttemptIn sets next_attempt_at to now() + NextAttemptIn (pending).
	NextAttemptIn time.Duration
	// LeaseExpiresIn sets lease_expires_at of an in_flight event to
	// now() + LeaseExpiresIn (negative: expired). LeaseOwner defaults to "relay-a".
	LeaseExpiresIn time.Duration
	LeaseOwner     string
}

// Row identifies a created event.
type Row struct {
	ID      int64  // outbox.id
	LeadID  int64  // leads.id = outbox.lead_id
	EventID string // outbox.event_id
}

// Add creates e and returns its ids; it fails t on any error.
func Add(t testing.TB, pool *pgxpool.Pool, e Event) Row {
	t.Helper()
	ctx := context.Background()
	if e.Status == "" {
		e.Status = "pending"
	}
	if e.CreatedAgo == 0 {
		e.CreatedAgo = time.Hour
	}
	if e.LeaseOwner == "" {
		e.LeaseOwner = "relay-a"
	}
	var r Row
	err := pool.QueryRow(ctx, `
		INSERT INTO leads (owner_id, first_name, last_name, email, created_at)
		VALUES ($1, 'Ada', 'Fixture', 'ada@example.com', now() - $2::bigint * interval '1 millisecond')
		RETURNING id`, e.User, e.CreatedAgo.Milliseconds()).Scan(&r.LeadID)
	if err != nil {
		t.Fatalf("operatortest: insert lead: %v", err)
	}
	if err := pool.QueryRow(ctx, `SELECT id, event_id::text FROM outbox WHERE lead_id = $1`, r.LeadID).Scan(&r.ID, &r.EventID); err != nil {
		t.Fatalf("operatortest: outbox row of lead %d: %v", r.LeadID, err)
	}
	ms := func(d time.Duration) int64 { return d.Milliseconds() }
	nullText := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	nullInt := func(n int) any {
		if n == 0 {
			return nil
		}
		return n
	}
	inFlight := e.Status == "in_flight"
	_, err = pool.Exec(ctx, `
		UPDATE outbox SET
		  status           = $2::text,
		  attempts         = $3,
		  created_at       = now() - $4::bigint * interval '1 millisecond',
		  next_attempt_at  = now() + $5::bigint * interval '1 millisecond',
		  delivered_at     = CASE WHEN $2::text = 'delivered' THEN now() - $6::bigint * interval '1 millisecond' END,
		  last_error       = CASE WHEN $2::text IN ('pending', 'dead', 'in_flight') THEN $7::text END,
		  last_http_status = CASE WHEN $2::text IN ('pending', 'dead', 'in_flight') THEN $8::int END,
		  lease_owner      = CASE WHEN $9 THEN $10::text END,
		  claimed_at       = CASE WHEN $9 THEN now() - interval '1 minute' END,
		  lease_expires_at = CASE WHEN $9 THEN now() + $11::bigint * interval '1 millisecond' END
		WHERE id = $1`,
		r.ID, e.Status, e.Attempts, ms(e.CreatedAgo), ms(e.NextAttemptIn), ms(e.DeliveredAgo),
		nullText(e.LastError), nullInt(e.HTTPStatus), inFlight, e.LeaseOwner, ms(e.LeaseExpiresIn))
	if err != nil {
		t.Fatalf("operatortest: set state %s: %v", e.Status, err)
	}
	recorded := e.Attempts
	if inFlight {
		recorded--
	}
	for i := 1; i <= recorded; i++ {
		a := Attempt{Number: i, RelayID: "relay-a", Error: e.LastError, HTTPStatus: e.HTTPStatus,
			StartedAgo: e.CreatedAgo - time.Duration(i)*time.Second}
		if i == e.Attempts && e.Status == "delivered" {
			a.Error, a.HTTPStatus = "", 200
		}
		if a.Error == "" && a.HTTPStatus != 200 {
			a.Error = fmt.Sprintf("attempt %d failed", i)
		}
		AddAttempt(t, pool, r.ID, a)
	}
	return r
}

// Attempt is one outbox_attempts row to write.
type Attempt struct {
	Number      int    // attempt number, 1-based
	RelayID     string // "" = NULL
	Error       string // "" = NULL (delivered)
	HTTPStatus  int    // 0 = NULL
	StartedAgo  time.Duration
	Interrupted bool // finished_at NULL
}

// AddAttempt writes a; it finished 100ms after it started unless Interrupted.
func AddAttempt(t testing.TB, pool *pgxpool.Pool, outboxID int64, a Attempt) {
	t.Helper()
	var relay, errText, status any
	if a.RelayID != "" {
		relay = a.RelayID
	}
	if a.Error != "" {
		errText = a.Error
	}
	if a.HTTPStatus != 0 {
		status = a.HTTPStatus
	}
	_, err := pool.Exec(context.Background(), `
		INSERT INTO outbox_attempts (outbox_id, attempt, relay_id, started_at, finished_at, http_status, error)
		VALUES ($1, $2, $3, now() - $4::bigint * interval '1 millisecond',
		        CASE WHEN $5 THEN NULL ELSE now() - $4::bigint * interval '1 millisecond' + interval '100 milliseconds' END,
		        $6, $7)`,
		outboxID, a.Number, relay, a.StartedAgo.Milliseconds(), a.Interrupted, status, errText)
	if err != nil {
		t.Fatalf("operatortest: insert attempt %d of %d: %v", a.Number, outboxID, err)
	}
}
