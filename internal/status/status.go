// Package status reads the delivery status tables (outbox, outbox_attempts)
// and summarises them for operators: counts by status, backlog age, recent
// delivery rate, who is behind and what is failing. Read-only.
package status

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Report is the summary printed by `outbox-relay status`.
type Report struct {
	At     time.Time        `json:"at"`
	Counts map[string]int64 `json:"counts"` // waiting, pending, in_flight, delivered, dead, skipped (always all six)
	// OldestPendingAge is how long the oldest pending or in-flight event has
	// waited since it was written, in seconds; 0 when there is none.
	OldestPendingAgeSeconds float64 `json:"oldest_pending_age_seconds"`
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

// Collect builds a Report. topN bounds each list (default 10).
func Collect(ctx context.Context, pool *pgxpool.Pool, topN int) (*Report, error) {
	if topN <= 0 {
		topN = 10
	}
	r := &Report{Counts: map[string]int64{"waiting": 0, "pending": 0, "in_flight": 0, "delivered": 0, "dead": 0, "skipped": 0}}
	err := pool.QueryRow(ctx, `SELECT now()`).Scan(&r.At)
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	rows, err := pool.Query(ctx, `SELECT status, count(*) FROM outbox GROUP BY status`)
	if err != nil {
		return nil, fmt.Errorf("status: counts: %w", err)
	}
	for rows.Next() {
		var s string
		var n int64
		if err := rows.Scan(&s, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("status: counts: %w", err)
		}
		r.Counts[s] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("status: counts: %w", err)
	}
	err = pool.QueryRow(ctx, `
		SELECT coalesce(extract(epoch FROM now() - least(
		         (SELECT min(created_at) FROM outbox WHERE status = 'pending'),
		         (SELECT min(created_at) FROM outbox WHERE status = 'in_flight')))::float8, 0)`).Scan(&r.OldestPendingAgeSeconds)
	if err != nil {
		return nil, fmt.Errorf("status: oldest pending: %w", err)
	}
	err = pool.QueryRow(ctx, `
		SELECT count(*) FROM outbox
		WHERE status = 'delivered' AND delivered_at > now() - interval '5 minutes'`).Scan(&r.DeliveredLast5m)
	if err != nil {
		return nil, fmt.Errorf("status: rate: %w", err)
	}
	r.RatePerSecond5m = float64(r.DeliveredLast5m) / 300
	rows, err = pool.Query(ctx, `
		SELECT user_id,
		       count(*) FILTER (WHERE status = 'pending'),
		       count(*) FILTER (WHERE status = 'in_flight'),
		       count(*) FILTER (WHERE status = 'dead')
		FROM outbox WHERE status IN ('pending', 'in_flight', 'dead')
		GROUP BY user_id
		ORDER BY count(*) FILTER (WHERE status IN ('pending', 'in_flight')) DESC, count(*) DESC, user_id
		LIMIT $1`, topN)
	if err != nil {
		return nil, fmt.Errorf("status: backlog: %w", err)
	}
	r.TopBacklog, err = pgx.CollectRows(rows, pgx.RowToStructByPos[UserBacklog])
	if err != nil {
		return nil, fmt.Errorf("status: backlog: %w", err)
	}
	if r.BlockedKeys, r.OldestBlockedKeySeconds, err = countBlockedKeys(ctx, pool); err != nil {
		return nil, err
	}
	if r.Blocked, err = blockedKeys(ctx, pool, topN); err != nil {
		return nil, err
	}
	rows, err = pool.Query(ctx, `
		SELECT left(error, 300), count(*), count(DISTINCT outbox_id), max(coalesce(finished_at, started_at))
		FROM outbox_attempts
		WHERE error IS NOT NULL AND started_at > now() - interval '24 hours'
		GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $1`, topN)
	if err != nil {
		return nil, fmt.Errorf("status: top errors: %w", err)
	}
	r.TopErrors, err = pgx.CollectRows(rows, pgx.RowToStructByPos[ErrorCount])
	if err != nil {
		return nil, fmt.Errorf("status: top errors: %w", err)
	}
	rows, err = pool.Query(ctx, `
		SELECT a.outbox_id, a.attempt, o.user_id, o.status, a.http_status, left(a.error, 300), coalesce(a.finished_at, a.started_at)
		FROM outbox_attempts a JOIN outbox o ON o.id = a.outbox_id
		WHERE a.error IS NOT NULL
		ORDER BY coalesce(a.finished_at, a.started_at) DESC
		LIMIT $1`, topN)
	if err != nil {
		return nil, fmt.Errorf("status: recent errors: %w", err)
	}
	r.RecentErrors, err = pgx.CollectRows(rows, pgx.RowToStructByPos[RecentError])
	if err != nil {
		return nil, fmt.Errorf("status: recent errors: %w", err)
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
	fmt.Fprintf(tw, "  pending\t%d\n  in_flight\t%d\n  delivered\t%d\n  dead\t%d\n",
		r.Counts["pending"], r.Counts["in_flight"], r.Counts["delivered"], r.Counts["dead"])
	// waiting: behind an earlier event of their ordering key; blocked
	// keys: ordering keys whose first undelivered event is dead.
	fmt.Fprintf(tw, "  waiting\t%d\n  skipped\t%d\n", r.Counts["waiting"], r.Counts["skipped"])
	fmt.Fprintf(tw, "  blocked keys\t%d", r.BlockedKeys)
	if r.BlockedKeys > 0 {
		fmt.Fprintf(tw, " (oldest %s)", (time.Duration(r.OldestBlockedKeySeconds * float64(time.Second))).Round(time.Second))
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "  oldest undelivered\t%s\n", (time.Duration(r.OldestPendingAgeSeconds * float64(time.Second))).Round(time.Millisecond))
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

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}
