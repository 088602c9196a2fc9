// Package status reads the delivery status tables (outbox, outbox_attempts)
// and summarises them for operators: counts by status, backlog age, recent
// delivery rate, who is behind and what is failing. Read-only.
//
// Its statements are sql/queries/status_*.sql (package dbsqlc). Counts come
// from the partial index of each status, never from a whole-table GROUP BY
// status; past DefaultExactCountUpTo outbox rows the delivered count is an
// estimate from the planner's statistics, and the Report says so.
package status

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/dbsqlc"
)

// Report is the summary printed by `outbox-relay status`.
type Report struct {
	At     time.Time        `json:"at"`
	Counts map[string]int64 `json:"counts"` // waiting, pending, in_flight, delivered, dead, skipped (always all six)
	// DeliveredEstimated is true when Counts["delivered"] is an estimate:
	// the outbox held more rows than Options.ExactCountUpTo by the planner's
	// statistics (pg_class.reltuples), so delivered rows were not counted.
	// The estimate is those statistics minus the other three (exact) counts.
	DeliveredEstimated bool `json:"delivered_estimated"`
	// OldestPendingAgeSeconds is how long the oldest event still waiting
	// for delivery (pending or in flight) has waited since it was written,
	// in seconds; 0 when none is waiting. Dead events are not waiting: see
	// OldestDeadAgeSeconds.
	OldestPendingAgeSeconds float64 `json:"oldest_pending_age_seconds"`
	// OldestDeadAgeSeconds is the age of the oldest dead event (since it
	// was written), in seconds; 0 when there is none.
	OldestDeadAgeSeconds float64 `json:"oldest_dead_age_seconds"`
	// DeliveredLast5m counts events delivered in the last 5 minutes;
	// RatePerSecond5m is that divided by 300.
	DeliveredLast5m int64         `json:"delivered_last_5m"`
	RatePerSecond5m float64       `json:"rate_per_second_5m"`
	TopBacklog      []UserBacklog `json:"top_backlog"`
	// BlockedKeys counts ordering keys whose first undelivered event is
	// dead (every later event of the key waits); OldestBlockedKeySeconds is
	// the age of the oldest such dead head (0 when none); Blocked lists up
	// to topN of them, oldest first.
	BlockedKeys             int64         `json:"blocked_keys"`
	OldestBlockedKeySeconds float64       `json:"oldest_blocked_key_seconds"`
	Blocked                 []BlockedKey  `json:"blocked"`
	TopErrors               []ErrorCount  `json:"top_errors"`
	RecentErrors            []RecentError `json:"recent_errors"`
	// Horizon is what keeps VACUUM from cleaning the outbox: the oldest
	// holders of the xmin horizon and the dead tuples they leave.
	Horizon Horizon `json:"xmin_horizon"`
}

// UserBacklog is one Connected User's undelivered events.
type UserBacklog struct {
	UserID   string `json:"user_id"`
	Pending  int64  `json:"pending"`
	InFlight int64  `json:"in_flight"`
	Dead     int64  `json:"dead"`
}

// ErrorCount groups failed attempts of the last 24 hours by error text.
type ErrorCount struct {
	Error    string    `json:"error"`
	Attempts int64     `json:"attempts"`
	Events   int64     `json:"events"`
	Last     time.Time `json:"last"`
}

// RecentError is one recent failed attempt.
type RecentError struct {
	OutboxID   int64     `json:"outbox_id"`
	Attempt    int32     `json:"attempt"`
	UserID     string    `json:"user_id"`
	Status     string    `json:"status"` // the event's current status
	HTTPStatus *int32    `json:"http_status"`
	Error      string    `json:"error"`
	At         time.Time `json:"at"`
}

// DefaultExactCountUpTo is Options.ExactCountUpTo's default: up to a
// million outbox rows, counting delivered rows (an index-only range of the
// partial index outbox_delivered_at) takes well under a second.
const DefaultExactCountUpTo = 1_000_000

// Options tune Collect.
type Options struct {
	// Top bounds each list (backlog by user, top errors, recent errors);
	// default 10.
	Top int
	// ExactCountUpTo: when pg_class.reltuples says the outbox holds more
	// rows than this, delivered rows are estimated rather than counted
	// (Report.DeliveredEstimated). 0 means DefaultExactCountUpTo; negative
	// always counts. A table never analyzed (reltuples -1) is counted.
	ExactCountUpTo int64
}

// Collect builds a Report with topN rows in each list (default 10) and the
// default Options otherwise. See CollectWith.
func Collect(ctx context.Context, pool *pgxpool.Pool, topN int) (*Report, error) {
	return CollectWith(ctx, pool, Options{Top: topN})
}

// CollectWith builds a Report. Errors are the database's, wrapped with
// "status: " and what was being read.
func CollectWith(ctx context.Context, pool *pgxpool.Pool, opt Options) (*Report, error) {
	top := int32(opt.Top)
	if opt.Top <= 0 || opt.Top > math.MaxInt32 {
		top = 10
	}
	exactUpTo := opt.ExactCountUpTo
	if exactUpTo == 0 {
		exactUpTo = DefaultExactCountUpTo
	}
	q := dbsqlc.New(pool)
	r := &Report{Counts: map[string]int64{"waiting": 0, "pending": 0, "in_flight": 0, "delivered": 0, "dead": 0, "skipped": 0}}
	var err error
	if r.At, err = q.Now(ctx); err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	c, err := q.StatusCounts(ctx)
	if err != nil {
		return nil, fmt.Errorf("status: counts: %w", err)
	}
	r.Counts["pending"], r.Counts["in_flight"], r.Counts["dead"] = c.Pending, c.InFlight, c.Dead
	r.Counts["waiting"], r.Counts["skipped"] = c.Waiting, c.Skipped
	r.OldestPendingAgeSeconds, r.OldestDeadAgeSeconds = c.OldestPendingSeconds, c.OldestDeadSeconds
	if exactUpTo > 0 && c.OutboxRowsEstimate > float64(exactUpTo) {
		r.DeliveredEstimated = true
		r.Counts["delivered"] = max(int64(c.OutboxRowsEstimate)-c.Pending-c.InFlight-c.Dead-c.Waiting-c.Skipped, 0)
	} else if r.Counts["delivered"], err = q.StatusDelivered(ctx); err != nil {
		return nil, fmt.Errorf("status: delivered count: %w", err)
	}
	if r.DeliveredLast5m, err = q.StatusDeliveredRecently(ctx, (5 * time.Minute).Milliseconds()); err != nil {
		return nil, fmt.Errorf("status: rate: %w", err)
	}
	r.RatePerSecond5m = float64(r.DeliveredLast5m) / 300
	backlog, err := q.StatusTopBacklog(ctx, top)
	if err != nil {
		return nil, fmt.Errorf("status: backlog: %w", err)
	}
	r.TopBacklog = make([]UserBacklog, 0, len(backlog))
	for _, b := range backlog {
		r.TopBacklog = append(r.TopBacklog, UserBacklog(b))
	}
	if r.BlockedKeys, r.OldestBlockedKeySeconds, err = countBlockedKeys(ctx, pool); err != nil {
		return nil, err
	}
	if r.Blocked, err = blockedKeys(ctx, pool, int(top)); err != nil {
		return nil, err
	}
	topErrors, err := q.StatusTopErrors(ctx, top)
	if err != nil {
		return nil, fmt.Errorf("status: top errors: %w", err)
	}
	r.TopErrors = make([]ErrorCount, 0, len(topErrors))
	for _, e := range topErrors {
		r.TopErrors = append(r.TopErrors, ErrorCount(e))
	}
	recent, err := q.StatusRecentErrors(ctx, top)
	if err != nil {
		return nil, fmt.Errorf("status: recent errors: %w", err)
	}
	r.RecentErrors = make([]RecentError, 0, len(recent))
	for _, e := range recent {
		r.RecentErrors = append(r.RecentErrors, RecentError(e))
	}
	// A role that may not read the horizon (sql/roles.sql not re-run after
	// migration 00010) still gets the rest of the report.
	if r.Horizon, err = ReadHorizon(ctx, pool); err != nil {
		r.Horizon.Error = err.Error()
	}
	return r, nil
}

// WriteJSON writes r as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes r for people.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Outbox at %s\n", r.At.UTC().Format(time.RFC3339))
	delivered := fmt.Sprint(r.Counts["delivered"])
	if r.DeliveredEstimated {
		delivered = "about " + delivered + " (estimated from table statistics: too many rows to count)"
	}
	fmt.Fprintf(tw, "  pending\t%d\n  in_flight\t%d\n  delivered\t%s\n  dead\t%d\n",
		r.Counts["pending"], r.Counts["in_flight"], delivered, r.Counts["dead"])
	// Dead events are not waiting for delivery (only a re-drive sends them
	// again), so they have their own line rather than counting as backlog.
	waiting := "none waiting"
	if r.Counts["pending"]+r.Counts["in_flight"] > 0 {
		waiting = seconds(r.OldestPendingAgeSeconds).String()
	}
	fmt.Fprintf(tw, "  oldest pending\t%s\n", waiting)
	if r.Counts["dead"] > 0 {
		fmt.Fprintf(tw, "  oldest dead\t%s (outbox-relay retry re-drives dead events)\n", seconds(r.OldestDeadAgeSeconds))
	}
	// waiting: behind an earlier event of their ordering key; blocked
	// keys: ordering keys whose first undelivered event is dead.
	fmt.Fprintf(tw, "  waiting\t%d\n  skipped\t%d\n", r.Counts["waiting"], r.Counts["skipped"])
	fmt.Fprintf(tw, "  blocked keys\t%d", r.BlockedKeys)
	if r.BlockedKeys > 0 {
		fmt.Fprintf(tw, " (oldest %s)", (time.Duration(r.OldestBlockedKeySeconds * float64(time.Second))).Round(time.Second))
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "  delivered last 5m\t%d (%.1f/s)\n", r.DeliveredLast5m, r.RatePerSecond5m)
	fmt.Fprintf(tw, "  dead tuples\toutbox %d, outbox_attempts %d\n", r.Horizon.DeadTuples["outbox"], r.Horizon.DeadTuples["outbox_attempts"])
	if r.Horizon.Error != "" {
		fmt.Fprintf(tw, "  xmin held by\tunknown (%s; re-run sql/roles.sql)\n", r.Horizon.Error)
	} else if len(r.Horizon.Holders) == 0 {
		fmt.Fprintf(tw, "  xmin held by\tnothing\n")
	} else {
		o := r.Horizon.Holders[0]
		age := "no start time"
		if o.AgeSeconds != nil {
			age = "open " + time.Duration(*o.AgeSeconds*float64(time.Second)).Round(time.Second).String()
		}
		fmt.Fprintf(tw, "  xmin held by\t%s %s (%s, xmin age %d transactions)\n", o.Holder, o.Detail, age, o.XminAge)
	}
	if len(r.TopBacklog) > 0 {
		fmt.Fprintf(tw, "\nBacklog by Connected User\n  user\tpending\tin_flight\tdead\n")
		for _, u := range r.TopBacklog {
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\n", u.UserID, u.Pending, u.InFlight, u.Dead)
		}
	}
	if len(r.Blocked) > 0 {
		fmt.Fprintf(tw, "\nBlocked ordering keys (re-drive the head: retry -id; or release the key: skip -key)\n  key\tdead head\tevent\tuser\twaiting\tblocked for\tlast error\n")
		for _, b := range r.Blocked {
			le := "-"
			if b.LastError != nil {
				le = *b.LastError
			}
			fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%d\t%s\t%s\n", b.OrderingKey, b.DeadHeadID, b.EventName, b.UserID, b.Waiting,
				(time.Duration(b.BlockedForSeconds * float64(time.Second))).Round(time.Second), oneLine(le))
		}
	}
	if len(r.TopErrors) > 0 {
		fmt.Fprintf(tw, "\nTop errors (24h)\n  attempts\tevents\terror\n")
		for _, e := range r.TopErrors {
			fmt.Fprintf(tw, "  %d\t%d\t%s\n", e.Attempts, e.Events, oneLine(e.Error))
		}
	}
	if len(r.RecentErrors) > 0 {
		fmt.Fprintf(tw, "\nMost recent errors\n  at\toutbox_id\tattempt\tuser\tnow\thttp\terror\n")
		for _, e := range r.RecentErrors {
			hs := "-"
			if e.HTTPStatus != nil {
				hs = fmt.Sprint(*e.HTTPStatus)
			}
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%s\t%s\t%s\t%s\n", e.At.UTC().Format(time.RFC3339), e.OutboxID, e.Attempt, e.UserID, e.Status, hs, oneLine(e.Error))
		}
	}
	return tw.Flush()
}

// seconds is a Report age as a Duration, to the millisecond.
func seconds(s float64) time.Duration {
	return time.Duration(s * float64(time.Second)).Round(time.Millisecond)
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}
