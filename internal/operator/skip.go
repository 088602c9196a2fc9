package operator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/dbsqlc"
)

// ErrNothingToSkip is returned by Skip when neither ids nor keys are given.
var ErrNothingToSkip = errors.New("skip needs outbox ids or ordering keys")

// Skipped is one dead event Skip released.
type Skipped struct {
	ID          int64   `json:"id"`
	UserID      string  `json:"user_id"`
	OrderingKey *string `json:"ordering_key"`
	// Promoted is the id of the event of the same key that became pending
	// (due now) because of this skip; nil when none was waiting.
	Promoted *int64 `json:"promoted"`
}

// SkipResult is what Skip did.
type SkipResult struct {
	Skipped []Skipped `json:"skipped"`
	// Untouched lists ids that were not dead (or do not exist) and keys
	// that had no dead event.
	Untouched     []int64  `json:"untouched"`
	UntouchedKeys []string `json:"untouched_keys"`
}

// The statement is sql/queries/skip.sql (run through package dbsqlc).

// Skip releases ordering keys whose head is dead: the dead events given by
// id, and every dead event of the given ordering keys, are marked
// 'skipped' (never sent; kept, with their attempts, for the record) and
// the next event of each key goes out. Each skip is recorded in
// outbox_redrives (action 'skip') with by (required) and reason. A skipped
// event can be sent later only by a forced re-drive (Filter.Force), since
// its key has moved on.
//
// Errors: ErrNothingToSkip, ErrNoActor, or the database error wrapped
// with "skip".
func Skip(ctx context.Context, pool *pgxpool.Pool, ids []int64, keys []string, by, reason string) (SkipResult, error) {
	if len(ids) == 0 && len(keys) == 0 {
		return SkipResult{}, ErrNothingToSkip
	}
	by = strings.TrimSpace(by)
	if by == "" {
		return SkipResult{}, ErrNoActor
	}
	var why *string
	if reason = strings.TrimSpace(reason); reason != "" {
		why = &reason
	}
	if ids == nil {
		ids = []int64{}
	}
	if keys == nil {
		keys = []string{}
	}
	ctx, cancel := context.WithTimeout(ctx, statementTimeout)
	defer cancel()
	rows, err := dbsqlc.New(pool).Skip(ctx, dbsqlc.SkipParams{Ids: ids, Keys: keys, SkippedBy: by, Reason: why})
	if err != nil {
		return SkipResult{}, fmt.Errorf("skip: %w", err)
	}
	sk := make([]Skipped, 0, len(rows))
	for _, row := range rows {
		sk = append(sk, Skipped(row))
	}
	res := SkipResult{Skipped: sk, Untouched: []int64{}, UntouchedKeys: []string{}}
	for _, id := range ids {
		if !slices.ContainsFunc(sk, func(s Skipped) bool { return s.ID == id }) && !slices.Contains(res.Untouched, id) {
			res.Untouched = append(res.Untouched, id)
		}
	}
	for _, k := range keys {
		if !slices.ContainsFunc(sk, func(s Skipped) bool { return s.OrderingKey != nil && *s.OrderingKey == k }) && !slices.Contains(res.UntouchedKeys, k) {
			res.UntouchedKeys = append(res.UntouchedKeys, k)
		}
	}
	return res, nil
}
