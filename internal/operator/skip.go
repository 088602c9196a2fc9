package operator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
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

// qSkip releases ordering keys blocked by dead events: the dead events
// selected ($1 ids, $2 ordering keys: every dead event of those keys)
// become 'skipped' (terminal: they are never sent), each is recorded in
// outbox_redrives with action 'skip', who ($3) and why ($4), and the next
// undelivered event of each key, if it is waiting, becomes pending (due
// now). Compare-and-set like qRedrive: rows are locked in id order and
// change only while still dead.
const qSkip = `
WITH target AS MATERIALIZED (
  SELECT o.id, o.user_id, o.ordering_key, o.attempts, o.last_error, o.last_http_status
  FROM outbox AS o
  WHERE o.status = 'dead'
    AND (o.id = ANY ($1::bigint[]) OR o.ordering_key = ANY ($2::text[]))
  ORDER BY o.id
  FOR UPDATE OF o
),
moved AS (
  UPDATE outbox AS o
  SET status = 'skipped'
  FROM target AS t
  WHERE o.id = t.id AND o.status = 'dead'
  RETURNING o.id, o.ordering_key, t.user_id, t.attempts, t.last_error, t.last_http_status
),
nexts AS MATERIALIZED (
  SELECT m.id,
         (SELECT n.id
          FROM outbox AS n
          WHERE n.ordering_key = m.ordering_key AND n.id > m.id
            AND n.status IN ('waiting', 'pending', 'in_flight', 'dead')
          ORDER BY n.id
          LIMIT 1) AS next_id
  FROM moved AS m
  WHERE m.ordering_key IS NOT NULL
),
promoted AS (
  UPDATE outbox AS w
  SET status = 'pending', next_attempt_at = now()
  WHERE w.id = ANY (ARRAY(SELECT next_id FROM nexts))
    AND w.status = 'waiting'
  RETURNING w.id
),
logged AS (
  INSERT INTO outbox_redrives (outbox_id, redriven_by, reason, previous_status,
                               previous_attempts, previous_last_error, previous_last_http_status, action)
  SELECT id, $3::text, $4::text, 'dead', attempts, last_error, last_http_status, 'skip'
  FROM moved
)
SELECT m.id, m.user_id, m.ordering_key,
       (SELECT p.id FROM promoted AS p JOIN nexts AS x ON x.next_id = p.id WHERE x.id = m.id)
FROM moved AS m
ORDER BY m.id`

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
	var why any
	if reason = strings.TrimSpace(reason); reason != "" {
		why = reason
	}
	if ids == nil {
		ids = []int64{}
	}
	if keys == nil {
		keys = []string{}
	}
	ctx, cancel := context.WithTimeout(ctx, statementTimeout)
	defer cancel()
	rows, err := pool.Query(ctx, qSkip, ids, keys, by, why)
	if err != nil {
		return SkipResult{}, fmt.Errorf("skip: %w", err)
	}
	sk, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Skipped])
	if err != nil {
		return SkipResult{}, fmt.Errorf("skip: %w", err)
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
