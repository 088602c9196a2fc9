package operator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
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
}

// redriveFilter is the WHERE clause shared by qRedrive and qRedriveDryRun.
// $1 ids (bigint[], NULL = any), $2 user id (NULL = any), $3 ILIKE pattern
// (NULL = any), $4 died at or after (NULL = any), $5 event name, $6 lead id,
// $7 created at or after, $8 created before (each NULL = any). NULL parameters switch a
// condition off, so one statement serves every combination. The scan is of
// dead rows only (partial index outbox_dead; dead rows are few, so even the
// generic plan of a prepared statement is cheap).
const redriveFilter = `
WHERE (o.status = 'dead' OR (o.status = 'skipped' AND $11::bool AND $1::bigint[] IS NOT NULL AND o.id = ANY($1::bigint[])))
  AND ($1::bigint[] IS NULL OR o.id = ANY($1::bigint[]))
  AND ($2::text IS NULL OR o.user_id = $2::text)
  AND ($3::text IS NULL OR o.last_error ILIKE $3::text)
  AND ($4::timestamptz IS NULL OR
       coalesce((SELECT max(coalesce(a.finished_at, a.started_at))
                 FROM outbox_attempts AS a
                 WHERE a.outbox_id = o.id), o.created_at) >= $4::timestamptz)
  AND ($5::text IS NULL OR o.event_name = $5::text)
  AND ($6::bigint IS NULL OR o.lead_id = $6::bigint)
  AND ($7::timestamptz IS NULL OR o.created_at >= $7::timestamptz)
  AND ($8::timestamptz IS NULL OR o.created_at < $8::timestamptz)`

// qRedrive moves the matching dead events to pending, due now, in one
// statement, and records each move in outbox_redrives ($9 by, $10 reason).
//
//   - target locks the matching rows (FOR UPDATE, in id order so concurrent
//     re-drives cannot deadlock). A row changed meanwhile is re-checked on
//     its newest version (READ COMMITTED EvalPlanQual) and dropped if it is
//     no longer dead, so the old values read here are the locked row's.
//   - moved is the compare-and-set: it changes a row only while it is dead.
//     attempts is left alone (attempt numbers keep rising, outbox_attempts
//     is never rewritten); attempts_base = attempts restarts the relay's
//     RELAY_MAX_ATTEMPTS count. last_error/last_http_status describe the
//     latest attempt, so they are cleared; the old values go to
//     outbox_redrives.
//   - logged inserts the history rows; data-modifying CTEs always run.
const qRedrive = `
WITH target AS MATERIALIZED (
  SELECT o.id, o.user_id, o.attempts, o.last_error, o.last_http_status, o.status
  FROM outbox AS o` + redriveFilter + `
  ORDER BY o.id
  FOR UPDATE OF o
),
moved AS (
  UPDATE outbox AS o
  SET status           = 'pending',
      next_attempt_at  = now(),
      attempts_base    = o.attempts,
      last_error       = NULL,
      last_http_status = NULL
  FROM target AS t
  WHERE o.id = t.id AND o.status = t.status
  RETURNING o.id, t.user_id, t.attempts, t.last_error, t.last_http_status, t.status
),
logged AS (
  INSERT INTO outbox_redrives (outbox_id, redriven_by, reason, previous_status,
                               previous_attempts, previous_last_error, previous_last_http_status, forced)
  SELECT id, $9::text, $10::text, status, attempts, last_error, last_http_status, status = 'skipped'
  FROM moved
)
SELECT id, user_id, attempts, last_error, last_http_status
FROM moved
ORDER BY id`

// qRedriveDryRun lists what qRedrive would move now, changing and locking
// nothing.
const qRedriveDryRun = `
SELECT o.id, o.user_id, o.attempts, o.last_error, o.last_http_status
FROM outbox AS o` + redriveFilter + `
  AND $9::text IS NULL AND $10::text IS NULL -- unused (NULL), typed so that $11 is Force as in qRedrive
ORDER BY o.id`

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
	var ids, user, pattern, since, name, lead, from, before, why any
	if len(f.IDs) > 0 {
		ids = f.IDs
	}
	if f.UserID != "" {
		user = f.UserID
	}
	if f.ErrorContains != "" {
		pattern = likeContains(f.ErrorContains)
	}
	if !f.DeadSince.IsZero() {
		since = f.DeadSince
	}
	if f.EventName != "" {
		name = f.EventName
	}
	if f.LeadID != 0 {
		lead = f.LeadID
	}
	if !f.CreatedFrom.IsZero() {
		from = f.CreatedFrom
	}
	if !f.CreatedBefore.IsZero() {
		before = f.CreatedBefore
	}
	if reason = strings.TrimSpace(reason); reason != "" {
		why = reason
	}
	ctx, cancel := context.WithTimeout(ctx, statementTimeout)
	defer cancel()
	var rows pgx.Rows
	var err error
	if dryRun {
		rows, err = pool.Query(ctx, qRedriveDryRun, ids, user, pattern, since, name, lead, from, before, nil, nil, f.Force)
	} else {
		rows, err = pool.Query(ctx, qRedrive, ids, user, pattern, since, name, lead, from, before, by, why, f.Force)
	}
	if err != nil {
		return Result{}, fmt.Errorf("redrive: %w", err)
	}
	evs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Redriven])
	if err != nil {
		return Result{}, fmt.Errorf("redrive: %w", err)
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
	return res, nil
}
