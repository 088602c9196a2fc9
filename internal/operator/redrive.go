package operator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/dbsqlc"
)

// ErrEmptyFilter is returned by Redrive for a Filter that selects nothing
// in particular: re-driving every dead event needs Filter.All.
var ErrEmptyFilter = errors.New("refusing to re-drive every dead event: give ids, a user, an error text or a time, or ask for all explicitly")

// ErrNoActor is returned by Redrive when by is blank (and it is not a dry
// run): every re-drive records who made it.
var ErrNoActor = errors.New("re-drive needs the name of who is doing it (by)")

// Filter selects dead events to re-drive. Set fields combine with AND; an
// unset field (nil, "", zero time) does not filter.
type Filter struct {
	// IDs are outbox ids.
	IDs []int64
	// UserID is the Connected User (outbox.user_id), matched exactly.
	UserID string
	// ErrorContains matches events whose last_error contains this text,
	// ignoring case (ILIKE). It is literal: % and _ match themselves.
	ErrorContains string
	// DeadSince keeps events that died at or after this instant: their
	// latest attempt started or finished then or later (their creation time
	// when they have no attempt). The outbox has no "died at" column; the
	// last attempt is what killed the event.
	DeadSince time.Time
	// EventName is the App Event's name (outbox.event_name), matched exactly.
	EventName string
	// LeadID is the lead the event is about (outbox.lead_id); 0 = any.
	LeadID int64
	// CreatedFrom and CreatedBefore bound outbox.created_at (the writing
	// transaction's start): created_at >= CreatedFrom and < CreatedBefore.
	// A zero time does not bound.
	CreatedFrom, CreatedBefore time.Time
	// All allows an otherwise empty filter to select every dead event.
	// With other fields set it changes nothing.
	All bool
	// Force also re-drives the skipped events among IDs (events an
	// operator released with Skip). Their ordering key has moved on: later
	// events of the key may already have been sent, so re-sending one is
	// out of order; each is recorded in outbox_redrives with forced = true.
	// Without Force, skipped events are left untouched.
	Force bool
}

// Empty reports whether f has no condition (All aside).
func (f Filter) Empty() bool {
	return len(f.IDs) == 0 && f.UserID == "" && f.ErrorContains == "" && f.DeadSince.IsZero() &&
		f.EventName == "" && f.LeadID == 0 && f.CreatedFrom.IsZero() && f.CreatedBefore.IsZero()
}

// ErrBadFilter wraps the reason a Filter is contradictory (e.g. an empty
// time range or a negative lead id).
var ErrBadFilter = errors.New("bad re-drive filter")

// Check reports a contradictory filter: a negative lead id, or a created_at
// range that ends before it starts. Errors wrap ErrBadFilter.
func (f Filter) Check() error {
	if f.LeadID < 0 {
		return fmt.Errorf("%w: lead id %d is negative", ErrBadFilter, f.LeadID)
	}
	if !f.CreatedFrom.IsZero() && !f.CreatedBefore.IsZero() && !f.CreatedBefore.After(f.CreatedFrom) {
		return fmt.Errorf("%w: created before %s is not after created from %s", ErrBadFilter,
			f.CreatedBefore.UTC().Format(time.RFC3339), f.CreatedFrom.UTC().Format(time.RFC3339))
	}
	return nil
}

// Redriven is one event a re-drive moved (or would move) back to pending,
// with the state it was in.
type Redriven struct {
	ID                     int64   `json:"id"`
	UserID                 string  `json:"user_id"`
	PreviousAttempts       int32   `json:"previous_attempts"`
	PreviousLastError      *string `json:"previous_last_error"`
	PreviousLastHTTPStatus *int32  `json:"previous_last_http_status"`
}

// Result is what Redrive did.
type Result struct {
	DryRun bool `json:"dry_run"`
	// Moved counts the events moved to pending (with DryRun: that would move).
	Moved int64 `json:"moved"`
	// IDs are their outbox ids, ascending.
	IDs    []int64    `json:"ids"`
	Events []Redriven `json:"events"`
	// Untouched lists ids of Filter.IDs that did not move: not dead (any
	// more), not matching the other conditions, or not there at all.
	Untouched []int64 `json:"untouched"`
	// UntouchedStatus is the status of each id in Untouched that exists
	// (e.g. "skipped": re-drive it with Filter.Force; "pending"); an id
	// missing from it is no event at all.
	UntouchedStatus map[int64]string `json:"untouched_status"`
}

// The statements are sql/queries/redrive.sql and redrive_dry_run.sql (run
// through package dbsqlc); their comments say why they are shaped so.

// likeContains returns an ILIKE pattern matching s anywhere, literally: the
// LIKE metacharacters and the default escape character are escaped.
func likeContains(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(s) + "%"
}

// Redrive moves dead events that match f back to pending, due at once, and
// records each move in outbox_redrives with by (required: who), reason
// (optional: why) and the event's previous attempts and last error. Rows
// that are not dead when the statement reaches them are never touched. The
// attempts counter and outbox_attempts are kept; attempts_base is set to
// attempts so the relay's attempt limit starts over.
//
// With dryRun it reports what would move and changes nothing. Errors:
// ErrEmptyFilter for a filter without conditions unless f.All, an
// ErrBadFilter from f.Check,
// ErrNoActor for a blank by (a dry run needs none), else the database error wrapped with "redrive".
func Redrive(ctx context.Context, pool *pgxpool.Pool, f Filter, by, reason string, dryRun bool) (Result, error) {
	if f.Empty() && !f.All {
		return Result{}, ErrEmptyFilter
	}
	if err := f.Check(); err != nil {
		return Result{}, err
	}
	by = strings.TrimSpace(by)
	if by == "" && !dryRun {
		return Result{}, ErrNoActor
	}
	// A nil parameter is SQL NULL: that condition is off.
	filter := dbsqlc.RedriveDryRunParams{Force: f.Force}
	if len(f.IDs) > 0 {
		filter.Ids = f.IDs
	}
	if f.UserID != "" {
		filter.UserID = &f.UserID
	}
	if f.ErrorContains != "" {
		pattern := likeContains(f.ErrorContains)
		filter.ErrorPattern = &pattern
	}
	if !f.DeadSince.IsZero() {
		filter.DeadSince = &f.DeadSince
	}
	if f.EventName != "" {
		filter.EventName = &f.EventName
	}
	if f.LeadID != 0 {
		filter.LeadID = &f.LeadID
	}
	if !f.CreatedFrom.IsZero() {
		filter.CreatedFrom = &f.CreatedFrom
	}
	if !f.CreatedBefore.IsZero() {
		filter.CreatedBefore = &f.CreatedBefore
	}
	var why *string
	if reason = strings.TrimSpace(reason); reason != "" {
		why = &reason
	}
	ctx, cancel := context.WithTimeout(ctx, statementTimeout)
	defer cancel()
	q := dbsqlc.New(pool)
	evs := []Redriven{}
	if dryRun {
		rows, err := q.RedriveDryRun(ctx, filter)
		if err != nil {
			return Result{}, fmt.Errorf("redrive: %w", err)
		}
		for _, row := range rows {
			evs = append(evs, Redriven(row))
		}
	} else {
		rows, err := q.Redrive(ctx, dbsqlc.RedriveParams{
			Ids: filter.Ids, UserID: filter.UserID, ErrorPattern: filter.ErrorPattern, DeadSince: filter.DeadSince,
			EventName: filter.EventName, LeadID: filter.LeadID, CreatedFrom: filter.CreatedFrom, CreatedBefore: filter.CreatedBefore,
			Force:      filter.Force,
			RedrivenBy: by, Reason: why,
		})
		if err != nil {
			return Result{}, fmt.Errorf("redrive: %w", err)
		}
		for _, row := range rows {
			evs = append(evs, Redriven(row))
		}
	}
	res := Result{DryRun: dryRun, Moved: int64(len(evs)), IDs: make([]int64, 0, len(evs)), Events: evs, Untouched: []int64{}}
	for _, e := range evs {
		res.IDs = append(res.IDs, e.ID)
	}
	for _, id := range f.IDs {
		if _, found := slices.BinarySearch(res.IDs, id); !found && !slices.Contains(res.Untouched, id) {
			res.Untouched = append(res.Untouched, id)
		}
	}
	res.UntouchedStatus = map[int64]string{}
	if len(res.Untouched) > 0 {
		rows, err := q.EventStatuses(ctx, res.Untouched)
		if err != nil {
			return Result{}, fmt.Errorf("redrive: status of untouched ids: %w", err)
		}
		for _, row := range rows {
			res.UntouchedStatus[row.ID] = row.Status
		}
	}
	return res, nil
}
