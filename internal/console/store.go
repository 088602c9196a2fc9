package console

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/dbsqlc"
)

// deliveredCountCap bounds the exact count of delivered rows on the
// overview; beyond it the page says "more than".
const deliveredCountCap = 1_000_000

// latencyWindow is the span of deliveries the latency percentiles cover.
const latencyWindow = time.Hour

// store runs the console's queries: sql/queries/console_*.sql, generated
// into internal/dbsqlc (make generate).
type store struct{ q *dbsqlc.Queries }

func newStore(pool *pgxpool.Pool) store { return store{q: dbsqlc.New(unnamed{pool})} }

// unnamed is the console's pool as dbsqlc sees it: every statement goes as
// an unnamed statement (pgx QueryExecModeExec, the first argument pgx
// reads), never as a prepared one, so PostgreSQL plans it with its actual
// parameter values each time. That is deliberate: the catch-all filters of
// console_list_events.sql ("x IS NULL OR col = x") fold away for a NULL
// parameter and to the bare condition for a set one, which then matches the
// partial indexes; a cached generic plan could not use them and would scan
// the outbox. The pool itself stays as the caller configured it (operator
// re-drives from the console use it as the `retry` command does).
// explain_test.go EXPLAINs the statements with exactly the text and
// arguments (exec mode first) that reach the pool through this type.
type unnamed struct{ db dbsqlc.DBTX }

func (u unnamed) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return u.db.Exec(ctx, sql, execArgs(args)...)
}

func (u unnamed) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return u.db.Query(ctx, sql, execArgs(args)...)
}

func (u unnamed) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return u.db.QueryRow(ctx, sql, execArgs(args)...)
}

// execArgs puts pgx.QueryExecModeExec before the statement's arguments.
func execArgs(args []any) []any { return append([]any{pgx.QueryExecModeExec}, args...) }

// overview is the first block of the overview page.
type overview struct {
	Now                      time.Time
	Waiting                  int64
	Pending                  int64
	InFlight                 int64
	Dead                     int64
	Skipped                  int64
	DeliveredCapped          int64
	OldestUndeliveredSeconds float64
	OldestPendingID          *int64
	LatencyCount             int64
	P50Seconds               *float64
	P90Seconds               *float64
	P99Seconds               *float64
	MaxSeconds               *float64
}

// The rows sqlc's types already fit as they are.
type (
	minuteCount = dbsqlc.ConsolePerMinuteRow
	errorCount  = dbsqlc.ConsoleTopErrorsRow
	relayRow    = dbsqlc.ConsoleRelaysRow
	redriveRow  = dbsqlc.ConsoleEventRedrivesRow // Action: redrive or skip
)

type userBacklog struct {
	UserID            string
	Pending           int64
	InFlight          int64
	Dead              int64
	OldestUndelivered *time.Time
}

type eventRow struct {
	ID             int64
	EventID        string
	EventName      string
	UserID         string
	LeadID         *int64
	OrderingKey    *string
	Status         string
	Attempts       int32
	CreatedAt      time.Time
	DeliveredAt    *time.Time
	LastHTTPStatus *int32
	LastError      *string
}

type eventDetail struct {
	ID             int64
	EventID        string
	EventName      string
	UserID         string
	LeadID         *int64
	OrderingKey    *string
	Status         string
	Attempts       int32
	AttemptsBase   int32
	CreatedAt      time.Time
	NextAttemptAt  time.Time
	DeliveredAt    *time.Time
	LastHTTPStatus *int32
	LastError      *string
	LeaseOwner     *string
	LeaseExpiresAt *time.Time
	Payload        *string
}

type attemptRow struct {
	Attempt    int32
	RelayID    *string
	StartedAt  time.Time
	FinishedAt *time.Time
	HTTPStatus *int32
	Error      *string
	Seconds    *float64 // nil while unfinished
}

// nullable reads a column sqlc's static analyzer could not type (an
// aggregate, an array element, a CASE with NULL: dbsqlc gives it as
// interface{}): nil for SQL NULL, else the value pgx decoded, which must be
// a T.
func nullable[T any](column string, v any) (*T, error) {
	if v == nil {
		return nil, nil
	}
	t, ok := v.(T)
	if !ok {
		var want T
		return nil, fmt.Errorf("column %s: got %T, want %T", column, v, want)
	}
	return &t, nil
}

// overview reads the overview's counts and latency.
func (s store) overview(ctx context.Context) (overview, error) {
	r, err := s.q.ConsoleOverview(ctx, deliveredCountCap+1, latencyWindow.Milliseconds())
	if err != nil {
		return overview{}, fmt.Errorf("ConsoleOverview: %w", err)
	}
	o := overview{
		Now: r.Now, Waiting: r.Waiting, Pending: r.Pending, InFlight: r.InFlight, Dead: r.Dead, Skipped: r.Skipped,
		DeliveredCapped: r.DeliveredCapped, OldestUndeliveredSeconds: r.OldestUndeliveredSeconds,
		LatencyCount: r.LatencyCount,
	}
	var errs [5]error
	o.OldestPendingID, errs[0] = nullable[int64]("oldest_pending_id", r.OldestPendingID)
	o.P50Seconds, errs[1] = nullable[float64]("p50_seconds", r.P50Seconds)
	o.P90Seconds, errs[2] = nullable[float64]("p90_seconds", r.P90Seconds)
	o.P99Seconds, errs[3] = nullable[float64]("p99_seconds", r.P99Seconds)
	o.MaxSeconds, errs[4] = nullable[float64]("max_seconds", r.MaxSeconds)
	if err := errors.Join(errs[:]...); err != nil {
		return o, fmt.Errorf("ConsoleOverview: %w", err)
	}
	return o, nil
}

// perMinute returns deliveries and failed attempts per minute over the
// last minutes minutes, oldest first.
func (s store) perMinute(ctx context.Context, minutes int) ([]minuteCount, error) {
	rows, err := s.q.ConsolePerMinute(ctx, int32(minutes))
	if err != nil {
		return nil, fmt.Errorf("ConsolePerMinute: %w", err)
	}
	return rows, nil
}

// backlog returns the undelivered and dead events of at most limit
// Connected Users, biggest backlog first.
func (s store) backlog(ctx context.Context, limit int) ([]userBacklog, error) {
	rows, err := s.q.ConsoleBacklogByUser(ctx, int32(limit))
	if err != nil {
		return nil, fmt.Errorf("ConsoleBacklogByUser: %w", err)
	}
	out := make([]userBacklog, len(rows))
	for i, r := range rows {
		out[i] = userBacklog{UserID: r.UserID, Pending: r.Pending, InFlight: r.InFlight, Dead: r.Dead}
		if out[i].OldestUndelivered, err = nullable[time.Time]("oldest_undelivered", r.OldestUndelivered); err != nil {
			return nil, fmt.Errorf("ConsoleBacklogByUser: %w", err)
		}
	}
	return out, nil
}

// topErrors returns the failed attempts of the last window by error text,
// at most limit texts.
func (s store) topErrors(ctx context.Context, window time.Duration, limit int) ([]errorCount, error) {
	rows, err := s.q.ConsoleTopErrors(ctx, window.Milliseconds(), int32(limit))
	if err != nil {
		return nil, fmt.Errorf("ConsoleTopErrors: %w", err)
	}
	return rows, nil
}

// relays returns the relays' heartbeats, running ones first.
func (s store) relays(ctx context.Context) ([]relayRow, error) {
	rows, err := s.q.ConsoleRelays(ctx)
	if err != nil {
		return nil, fmt.Errorf("ConsoleRelays: %w", err)
	}
	return rows, nil
}

// canWrite reports whether the pool's role may re-drive on a writable
// primary.
func (s store) canWrite(ctx context.Context) (bool, error) {
	return s.q.ConsoleCanWrite(ctx)
}

// eventFilter is the events page's filter; zero fields do not filter.
type eventFilter struct {
	Status        string
	UserID        string
	EventName     string
	LeadID        int64
	CreatedFrom   time.Time
	CreatedBefore time.Time
	ErrorContains string
	OrderingKey   string
	Before        int64 // keyset cursor: ids below this
}

// params are f's parameters of console_list_events.sql: a zero field is
// NULL (any), limit is the page size.
func (f eventFilter) params(limit int) dbsqlc.ConsoleListEventsParams {
	str := func(v string) *string {
		if v == "" {
			return nil
		}
		return &v
	}
	tm := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		return &t
	}
	id := func(i int64) *int64 {
		if i == 0 {
			return nil
		}
		return &i
	}
	p := dbsqlc.ConsoleListEventsParams{
		Status: str(f.Status), OrderingKey: str(f.OrderingKey), UserID: str(f.UserID), EventName: str(f.EventName),
		LeadID: id(f.LeadID), CreatedFrom: tm(f.CreatedFrom), CreatedBefore: tm(f.CreatedBefore),
		BeforeID: id(f.Before), PageSize: int32(limit),
	}
	if f.ErrorContains != "" {
		p.ErrorPattern = str(likeContains(f.ErrorContains))
	}
	return p
}

// listEvents returns up to limit events matching f, newest first.
func (s store) listEvents(ctx context.Context, f eventFilter, limit int) ([]eventRow, error) {
	rows, err := s.q.ConsoleListEvents(ctx, f.params(limit))
	if err != nil {
		return nil, fmt.Errorf("ConsoleListEvents: %w", err)
	}
	out := make([]eventRow, len(rows))
	for i, r := range rows {
		out[i] = eventRow{
			ID: r.ID, EventID: r.EventID, EventName: r.EventName, UserID: r.UserID, LeadID: r.LeadID,
			OrderingKey: r.OrderingKey, Status: r.Status, Attempts: r.Attempts, CreatedAt: r.CreatedAt,
			DeliveredAt: r.DeliveredAt, LastHTTPStatus: r.LastHTTPStatus,
		}
		if r.LastError != "" {
			out[i].LastError = &r.LastError
		}
	}
	return out, nil
}

// blockedKeys lists ordering keys held back by a dead head event.
func (s store) blockedKeys(ctx context.Context, limit int) ([]BlockedKey, error) {
	rows, err := s.q.ConsoleBlockedKeys(ctx, int32(limit))
	if err != nil {
		return nil, fmt.Errorf("ConsoleBlockedKeys: %w", err)
	}
	out := make([]BlockedKey, len(rows))
	for i, r := range rows {
		out[i] = BlockedKey{Key: r.Key, UserID: r.UserID, HeadID: r.HeadID, Waiting: r.Waiting, BlockedS: r.BlockedSeconds}
	}
	return out, nil
}

var errNotFound = errors.New("no such event")

func (s store) event(ctx context.Context, id int64, hidePayload bool) (eventDetail, []attemptRow, []redriveRow, error) {
	r, err := s.q.ConsoleEvent(ctx, hidePayload, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return eventDetail{}, nil, nil, errNotFound
	}
	if err != nil {
		return eventDetail{}, nil, nil, fmt.Errorf("ConsoleEvent: %w", err)
	}
	ev := eventDetail{
		ID: r.ID, EventID: r.EventID, EventName: r.EventName, UserID: r.UserID, LeadID: r.LeadID,
		OrderingKey: r.OrderingKey, Status: r.Status, Attempts: r.Attempts, AttemptsBase: r.AttemptsBase,
		CreatedAt: r.CreatedAt, NextAttemptAt: r.NextAttemptAt, DeliveredAt: r.DeliveredAt,
		LastHTTPStatus: r.LastHTTPStatus, LastError: r.LastError, LeaseOwner: r.LeaseOwner,
		LeaseExpiresAt: r.LeaseExpiresAt,
	}
	if ev.Payload, err = nullable[string]("payload", r.Payload); err != nil {
		return ev, nil, nil, fmt.Errorf("ConsoleEvent: %w", err)
	}
	ar, err := s.q.ConsoleEventAttempts(ctx, id)
	if err != nil {
		return ev, nil, nil, fmt.Errorf("ConsoleEventAttempts: %w", err)
	}
	att := make([]attemptRow, len(ar))
	for i, a := range ar {
		att[i] = attemptRow{
			Attempt: a.Attempt, RelayID: a.RelayID, StartedAt: a.StartedAt, FinishedAt: a.FinishedAt,
			HTTPStatus: a.HTTPStatus, Error: a.Error,
		}
		if a.FinishedAt != nil {
			sec := a.FinishedAt.Sub(a.StartedAt).Seconds()
			att[i].Seconds = &sec
		}
	}
	rd, err := s.q.ConsoleEventRedrives(ctx, id)
	if err != nil {
		return ev, nil, nil, fmt.Errorf("ConsoleEventRedrives: %w", err)
	}
	return ev, att, rd, nil
}

// likeContains is the ILIKE pattern matching s literally anywhere, as
// operator.Filter.ErrorContains does, so the list and a bulk re-drive from
// it select the same events.
func likeContains(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(s) + "%"
}
