// Package operator is what people on call do to the outbox by hand, behind
// the `inspect`, `retry` and `purge` commands: look at one event with its
// whole history, move dead events back to pending (recording who did it and
// why), and delete old finished events in small batches.
//
// Every statement is a file of sql/queries (run through package dbsqlc) with
// a comment on why it is shaped that way. Writes are
// compare-and-set against the state the operator means to change (only
// dead rows are re-driven, only delivered and dead rows are purged), so they
// are safe while relays run. It never talks to Paragon and never decides
// retry policy; the relay does.
package operator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/dbsqlc"
)

// statementTimeout bounds every statement this package runs.
const statementTimeout = 30 * time.Second

// ErrNotFound is returned (wrapped) by Inspect when no outbox row matches.
var ErrNotFound = errors.New("no such outbox event")

// ErrBadRef is returned (wrapped) by ParseRef and Inspect when a reference is
// neither an outbox id, lead:<id> nor an event id.
var ErrBadRef = errors.New("not an event reference: want an outbox id (digits), lead:<lead id> or an event id (uuid)")

// RefKind says which column a Ref matches.
type RefKind int

// Kinds of Ref.
const (
	RefOutboxID RefKind = iota + 1 // outbox.id
	RefLeadID                      // outbox.lead_id
	RefEventID                     // outbox.event_id
)

// Ref identifies one outbox event.
type Ref struct {
	Kind    RefKind
	ID      int64  // the outbox id or lead id (RefOutboxID, RefLeadID)
	EventID string // the uuid, lower case with hyphens (RefEventID)
}

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$`)

// ParseRef reads a reference as operators type it:
//
//   - digits only ("5000000001"): an outbox id. A plain number is always an
//     outbox id, never a lead id; write lead:<id> for a lead.
//   - "lead:<digits>": a lead id (leads.id = outbox.lead_id).
//   - a UUID ("0190f3c4-...", hyphens optional, any case): an event id, as
//     found in the payload's eventId.
//
// Anything else is ErrBadRef.
func ParseRef(s string) (Ref, error) {
	s = strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(s, "lead:"); ok {
		id, err := strconv.ParseInt(rest, 10, 64)
		if err != nil || id <= 0 || !isDigits(rest) {
			return Ref{}, fmt.Errorf("%w: %q", ErrBadRef, s)
		}
		return Ref{Kind: RefLeadID, ID: id}, nil
	}
	if isDigits(s) {
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil || id <= 0 {
			return Ref{}, fmt.Errorf("%w: %q (out of range)", ErrBadRef, s)
		}
		return Ref{Kind: RefOutboxID, ID: id}, nil
	}
	if uuidRE.MatchString(s) {
		h := strings.ToLower(strings.ReplaceAll(s, "-", ""))
		return Ref{Kind: RefEventID, EventID: h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]}, nil
	}
	return Ref{}, fmt.Errorf("%w: %q", ErrBadRef, s)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Event is one outbox row, every column. Nullable columns are pointers (nil
// = NULL). Times are as stored (timestamptz, database clock).
type Event struct {
	ID             int64           `json:"id"`
	EventID        string          `json:"event_id"`
	EventName      string          `json:"event_name"`
	UserID         string          `json:"user_id"`
	LeadID         *int64          `json:"lead_id"`
	Payload        json.RawMessage `json:"payload"` // the jsonb, as Postgres renders it
	Status         string          `json:"status"`  // pending, in_flight, delivered, dead
	Attempts       int32           `json:"attempts"`
	AttemptsBase   int32           `json:"attempts_base"` // attempts at the last re-drive (0: never re-driven)
	NextAttemptAt  time.Time       `json:"next_attempt_at"`
	CreatedAt      time.Time       `json:"created_at"`
	DeliveredAt    *time.Time      `json:"delivered_at"`
	LastError      *string         `json:"last_error"`
	LastHTTPStatus *int32          `json:"last_http_status"`
	LeaseOwner     *string         `json:"lease_owner"`
	ClaimedAt      *time.Time      `json:"claimed_at"`
	LeaseExpiresAt *time.Time      `json:"lease_expires_at"`
}

// Attempt is one outbox_attempts row.
type Attempt struct {
	Attempt    int32      `json:"attempt"` // 1-based; keeps counting across re-drives
	RelayID    *string    `json:"relay_id"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"` // nil: interrupted (the relay's lease expired)
	HTTPStatus *int32     `json:"http_status"` // nil: no response
	Error      *string    `json:"error"`       // nil: delivered
}

// RedriveRecord is one outbox_redrives row: a re-drive (or skip) of the
// event and the state it moved the event out of.
type RedriveRecord struct {
	ID                     int64     `json:"id"`
	RedrivenAt             time.Time `json:"redriven_at"`
	RedrivenBy             string    `json:"redriven_by"`
	Reason                 *string   `json:"reason"`
	PreviousStatus         string    `json:"previous_status"`
	PreviousAttempts       int32     `json:"previous_attempts"`
	PreviousLastError      *string   `json:"previous_last_error"`
	PreviousLastHTTPStatus *int32    `json:"previous_last_http_status"`
	// Action is "redrive" (sent again) or "skip" (released its ordering key
	// without sending; `outbox-relay skip`).
	Action string `json:"action"`
	// Forced: a re-drive of a skipped event (`outbox-relay retry -force`).
	Forced bool `json:"forced"`
}

// Inspection is everything known about one event, read in one snapshot.
type Inspection struct {
	At       time.Time       `json:"at"` // database clock when it was read
	Event    Event           `json:"event"`
	Attempts []Attempt       `json:"attempts"` // by attempt number
	Redrives []RedriveRecord `json:"redrives"` // oldest first
	// OtherEventsOfLead lists other outbox ids with the same lead_id (a lead
	// normally has exactly one event; more means it was written twice).
	OtherEventsOfLead []int64 `json:"other_events_of_lead"`
}

// The statements are sql/queries/now.sql, event_by_id.sql,
// event_by_lead_id.sql, event_by_event_id.sql, event_attempts.sql,
// event_redrives.sql and other_events_of_lead.sql.

// eventFromRow is the Event of an outbox row as sqlc reads it.
func eventFromRow(o dbsqlc.Outbox) Event {
	return Event{
		ID: o.ID, EventID: o.EventID, EventName: o.EventName, UserID: o.UserID, LeadID: o.LeadID,
		Payload: json.RawMessage(o.Payload), Status: o.Status,
		Attempts: o.Attempts, AttemptsBase: o.AttemptsBase, NextAttemptAt: o.NextAttemptAt, CreatedAt: o.CreatedAt,
		DeliveredAt: o.DeliveredAt, LastError: o.LastError, LastHTTPStatus: o.LastHTTPStatus,
		LeaseOwner: o.LeaseOwner, ClaimedAt: o.ClaimedAt, LeaseExpiresAt: o.LeaseExpiresAt,
	}
}

// Inspect returns the outbox row ref names, with every attempt and every
// re-drive, read in one REPEATABLE READ, read-only transaction so the three
// agree. ref is parsed by ParseRef: digits are an outbox id, lead:<id> a
// lead id, a UUID an event id. Errors: ErrBadRef for an unreadable ref,
// ErrNotFound (wrapped, naming ref) when nothing matches, else the database
// error wrapped with "inspect".
func Inspect(ctx context.Context, pool *pgxpool.Pool, ref string) (*Inspection, error) {
	r, err := ParseRef(ref)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, statementTimeout)
	defer cancel()
	in := &Inspection{Attempts: []Attempt{}, Redrives: []RedriveRecord{}, OtherEventsOfLead: []int64{}}
	err = pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		q := dbsqlc.New(tx)
		var err error
		if in.At, err = q.Now(ctx); err != nil {
			return err
		}
		var row dbsqlc.Outbox
		switch r.Kind {
		case RefOutboxID:
			row, err = q.EventByID(ctx, r.ID)
		case RefLeadID:
			row, err = q.EventByLeadID(ctx, r.ID)
		default:
			row, err = q.EventByEventID(ctx, r.EventID)
		}
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: %s", ErrNotFound, ref)
		}
		if err != nil {
			return err
		}
		in.Event = eventFromRow(row)
		attempts, err := q.EventAttempts(ctx, row.ID)
		if err != nil {
			return err
		}
		for _, a := range attempts {
			in.Attempts = append(in.Attempts, Attempt(a))
		}
		redrives, err := q.EventRedrives(ctx, row.ID)
		if err != nil {
			return err
		}
		for _, rd := range redrives {
			in.Redrives = append(in.Redrives, RedriveRecord(rd))
		}
		if row.LeadID != nil {
			others, err := q.OtherEventsOfLead(ctx, *row.LeadID, row.ID)
			if err != nil {
				return err
			}
			in.OtherEventsOfLead = append(in.OtherEventsOfLead, others...)
		}
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", ref, err)
	}
	return in, nil
}
