package status

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/dbsqlc"
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
	q := dbsqlc.New(pool)
	holders, err := q.XminHorizon(ctx)
	if err != nil {
		return h, fmt.Errorf("xmin horizon: %w", err)
	}
	h.Holders = make([]HorizonHolder, 0, len(holders))
	for _, x := range holders {
		hh := HorizonHolder{Holder: x.Holder, Detail: x.Detail, XminAge: x.XminAge}
		if x.AgeSeconds >= 0 { // -1: no start time (slot, standby)
			age := x.AgeSeconds
			hh.AgeSeconds = &age
		}
		h.Holders = append(h.Holders, hh)
	}
	dead, err := q.DeadTuples(ctx)
	if err != nil {
		return h, fmt.Errorf("dead tuples: %w", err)
	}
	for _, d := range dead {
		h.DeadTuples[d.Relname] = d.NDeadTup
	}
	return h, nil
}
