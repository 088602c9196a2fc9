package status

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// HorizonHolder is one holder of this database's xmin horizon: something
// that keeps VACUUM from removing dead outbox row versions and index
// entries (see migration 00010, outbox_xmin_horizon()).
type HorizonHolder struct {
	// Holder is "session", "prepared transaction", "replication slot" or
	// "hot_standby_feedback".
	Holder string `json:"holder"`
	// Detail names it: pid, role, application and state of a session, gid
	// of a prepared transaction, slot or standby name. Never a query.
	Detail string `json:"detail"`
	// AgeSeconds is how long its transaction has been open; nil for slots
	// and standbys, which have no start time.
	AgeSeconds *float64 `json:"age_seconds"`
	// XminAge is the age of its xmin in transactions.
	XminAge int32 `json:"xmin_age"`
}

// Horizon is what holds back cleanup of the outbox tables.
type Horizon struct {
	// Holders, oldest xmin first (at most 10).
	Holders []HorizonHolder `json:"holders"`
	// DeadTuples are dead row versions by outbox table, from
	// pg_stat_user_tables (statistics, so approximate and a little late).
	DeadTuples map[string]int64 `json:"dead_tuples"`
	// Error says why the horizon could not be read (in a status Report;
	// e.g. no EXECUTE on outbox_xmin_horizon()); "" when it was.
	Error string `json:"error,omitempty"`
}

// OldestAgeSeconds is the longest-open holder's age in seconds (0 if none
// has a start time).
func (h Horizon) OldestAgeSeconds() float64 {
	var m float64
	for _, x := range h.Holders {
		if x.AgeSeconds != nil && *x.AgeSeconds > m {
			m = *x.AgeSeconds
		}
	}
	return m
}

// ReadHorizon reads the holders of the xmin horizon (through the SECURITY
// DEFINER function outbox_xmin_horizon(), which needs EXECUTE: sql/roles.sql
// grants it to outbox_relay and outbox_operator) and the outbox tables' dead
// tuples.
func ReadHorizon(ctx context.Context, pool *pgxpool.Pool) (Horizon, error) {
	h := Horizon{DeadTuples: map[string]int64{}}
	rows, err := pool.Query(ctx, `SELECT holder, detail, age_seconds, xmin_age FROM outbox_xmin_horizon()`)
	if err != nil {
		return h, fmt.Errorf("xmin horizon: %w", err)
	}
	h.Holders, err = pgx.CollectRows(rows, pgx.RowToStructByPos[HorizonHolder])
	if err != nil {
		return h, fmt.Errorf("xmin horizon: %w", err)
	}
	rows, err = pool.Query(ctx, `
		SELECT relname::text, n_dead_tup FROM pg_stat_user_tables
		WHERE relid IN ('outbox'::regclass, 'outbox_attempts'::regclass)`)
	if err != nil {
		return h, fmt.Errorf("dead tuples: %w", err)
	}
	var name string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&name, &n}, func() error { h.DeadTuples[name] = n; return nil })
	if err != nil {
		return h, fmt.Errorf("dead tuples: %w", err)
	}
	return h, nil
}
