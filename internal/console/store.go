package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/namedsql"
)

//go:embed queries.sql
var queryFS embed.FS

var queries = namedsql.MustLoad(queryFS, "queries.sql")

// deliveredCountCap bounds the exact count of delivered rows on the
// overview; beyond it the page says "more than".
const deliveredCountCap = 1_000_000

// latencyWindow is the span of deliveries the latency percentiles cover.
const latencyWindow = time.Hour

// store runs the console's queries. Every statement goes as an unnamed
// statement (QueryExecModeExec) so that it is planned with its parameter
// values (see queries.sql).
type store struct{ pool *pgxpool.Pool }

func (s store) query(ctx context.Context, name string, args ...any) (pgx.Rows, error) {
	return s.pool.Query(ctx, queries.Get(name), append([]any{pgx.QueryExecModeExec}, args...)...)
}

// overview is the first block of the overview page.
type overview struct {
	Now                      time.Time `db:"now"`
	Waiting                  int64     `db:"waiting"`
	Pending                  int64     `db:"pending"`
	InFlight                 int64     `db:"in_flight"`
	Dead                     int64     `db:"dead"`
	Skipped                  int64     `db:"skipped"`
	DeliveredCapped          int64     `db:"delivered_capped"`
	OldestUndeliveredSeconds float64   `db:"oldest_undelivered_seconds"`
	OldestPendingID          *int64    `db:"oldest_pending_id"`
	LatencyCount             int64     `db:"latency_count"`
	P50Seconds               *float64  `db:"p50_seconds"`
	P90Seconds               *float64  `db:"p90_seconds"`
	P99Seconds               *float64  `db:"p99_seconds"`
	MaxSeconds               *float64  `db:"max_seconds"`
}

type minuteCount struct {
	Minute    time.Time `db:"minute"`
	Delivered int64     `db:"delivered"`
	Failed    int64     `db:"failed"`
}

type userBacklog struct {
	UserID            string     `db:"user_id"`
	Pending           int64      `db:"pending"`
	InFlight          int64      `db:"in_flight"`
	Dead              int64      `db:"dead"`
	OldestUndelivered *time.Time `db:"oldest_undelivered"`
}

type errorCount struct {
	Error    string    `db:"error"`
	Attempts int64     `db:"attempts"`
	Events   int64     `db:"events"`
	LastAt   time.Time `db:"last_at"`
}

type relayRow struct {
	RelayID        string     `db:"relay_id"`
	Version        string     `db:"version"`
	Host           string     `db:"host"`
	StartedAt      time.Time  `db:"started_at"`
	LastSeenAt     time.Time  `db:"last_seen_at"`
	StoppedAt      *time.Time `db:"stopped_at"`
	BreakerState   string     `db:"breaker_state"`
	InFlight       int32      `db:"in_flight"`
	SeenSecondsAgo float64    `db:"seen_seconds_ago"`
}

type eventRow struct {
	ID             int64      `db:"id"`
	EventID        string     `db:"event_id"`
	EventName      string     `db:"event_name"`
	UserID         string     `db:"user_id"`
	LeadID         *int64     `db:"lead_id"`
	OrderingKey    *string    `db:"ordering_key"`
	Status         string     `db:"status"`
	Attempts       int32      `db:"attempts"`
	CreatedAt      time.Time  `db:"created_at"`
	DeliveredAt    *time.Time `db:"delivered_at"`
	LastHTTPStatus *int32     `db:"last_http_status"`
	LastError      *string    `db:"last_error"`
}

type eventDetail struct {
	ID             int64      `db:"id"`
	EventID        string     `db:"event_id"`
	EventName      string     `db:"event_name"`
	UserID         string     `db:"user_id"`
	LeadID         *int64     `db:"lead_id"`
	OrderingKey    *string    `db:"ordering_key"`
	Status         string     `db:"status"`
	Attempts       int32      `db:"attempts"`
	AttemptsBase   int32      `db:"attempts_base"`
	CreatedAt      time.Time  `db:"created_at"`
	NextAttemptAt  time.Time  `db:"next_attempt_at"`
	DeliveredAt    *time.Time `db:"delivered_at"`
	LastHTTPStatus *int32     `db:"last_http_status"`
	LastError      *string    `db:"last_error"`
	LeaseOwner     *string    `db:"lease_owner"`
	LeaseExpiresAt *time.Time `db:"lease_expires_at"`
	Payload        *string    `db:"payload"`
}

type attemptRow struct {
	Attempt    int32      `db:"attempt"`
	RelayID    *string    `db:"relay_id"`
	StartedAt  time.Time  `db:"started_at"`
	FinishedAt *time.Time `db:"finished_at"`
	HTTPStatus *int32     `db:"http_status"`
	Error      *string    `db:"error"`
	Seconds    *float64   `db:"seconds"`
}

type redriveRow struct {
	RedrivenAt             time.Time `db:"redriven_at"`
	RedrivenBy             string    `db:"redriven_by"`
	Action                 string    `db:"action"` // redrive or skip
	Reason                 string    `db:"reason"`
	PreviousStatus         string    `db:"previous_status"`
	PreviousAttempts       int32     `db:"previous_attempts"`
	PreviousLastError      *string   `db:"previous_last_error"`
	PreviousLastHTTPStatus *int32    `db:"previous_last_http_status"`
}

func one[T any](ctx context.Context, s store, name string, args ...any) (T, error) {
	rows, err := s.query(ctx, name, args...)
	if err != nil {
		var zero T
		return zero, fmt.Errorf("%s: %w", name, err)
	}
	v, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[T])
	if err != nil {
		return v, fmt.Errorf("%s: %w", name, err)
	}
	return v, nil
}

func many[T any](ctx context.Context, s store, name string, args ...any) ([]T, error) {
	rows, err := s.query(ctx, name, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	v, err := pgx.CollectRows(rows, pgx.RowToStructByName[T])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return v, nil
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

// listEvents returns up to limit events matching f, newest first.
func (s store) listEvents(ctx context.Context, f eventFilter, limit int) ([]eventRow, error) {
	nz := func(v string) any {
		if v == "" {
			return nil
		}
		return v
	}
	nt := func(t time.Time) any {
		if t.IsZero() {
			return nil
		}
		return t
	}
	ni := func(i int64) any {
		if i == 0 {
			return nil
		}
		return i
	}
	var pattern any
	if f.ErrorContains != "" {
		pattern = likeContains(f.ErrorContains)
	}
	return many[eventRow](ctx, s, "ListEvents", nz(f.Status), nz(f.UserID), nz(f.EventName), ni(f.LeadID),
		nt(f.CreatedFrom), nt(f.CreatedBefore), pattern, ni(f.Before), limit, nz(f.OrderingKey))
}

// blockedKeys lists ordering keys held back by a dead head event.
func (s store) blockedKeys(ctx context.Context, limit int) ([]BlockedKey, error) {
	return many[BlockedKey](ctx, s, "BlockedKeys", limit)
}

var errNotFound = errors.New("no such event")

func (s store) event(ctx context.Context, id int64, hidePayload bool) (eventDetail, []attemptRow, []redriveRow, error) {
	ev, err := one[eventDetail](ctx, s, "GetEvent", id, hidePayload)
	if errors.Is(err, pgx.ErrNoRows) {
		return ev, nil, nil, errNotFound
	}
	if err != nil {
		return ev, nil, nil, err
	}
	att, err := many[attemptRow](ctx, s, "EventAttempts", id)
	if err != nil {
		return ev, nil, nil, err
	}
	rd, err := many[redriveRow](ctx, s, "EventRedrives", id)
	return ev, att, rd, err
}

// likeContains is the ILIKE pattern matching s literally anywhere, as
// operator.Filter.ErrorContains does, so the list and a bulk re-drive from
// it select the same events.
func likeContains(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(s) + "%"
}
