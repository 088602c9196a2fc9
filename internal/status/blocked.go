package status

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/dbsqlc"
	sqlfiles "github.com/paragon-outbox/outbox-relay/sql"
)

// BlockedKey is an ordering key whose first undelivered event is dead: the
// events behind it wait until an operator re-drives the dead head
// (`outbox-relay retry -id`) or releases the key (`outbox-relay skip`).
type BlockedKey struct {
	OrderingKey    string    `json:"ordering_key"`
	DeadHeadID     int64     `json:"dead_head_id"` // the dead event that blocks the key
	EventName      string    `json:"event_name"`
	UserID         string    `json:"user_id"`
	Attempts       int32     `json:"attempts"`
	LastHTTPStatus *int32    `json:"last_http_status"`
	LastError      *string   `json:"last_error"`
	CreatedAt      time.Time `json:"created_at"` // when the dead head was written
	Waiting        int64     `json:"waiting"`    // later events of the key waiting behind it
	// BlockedForSeconds is the dead head's age in seconds.
	BlockedForSeconds float64 `json:"blocked_for_seconds"`
}

// blockedKeys lists blocked keys, oldest first, at most limit of them, with
// sql/operator/blocked_keys.sql (the query people run with psql).
func blockedKeys(ctx context.Context, pool *pgxpool.Pool, limit int) ([]BlockedKey, error) {
	q, err := sqlfiles.Operator("blocked_keys")
	if err != nil {
		return nil, err
	}
	rows, err := pool.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("status: blocked keys: %w", err)
	}
	out := []BlockedKey{}
	for rows.Next() {
		var b BlockedKey
		var blockedFor time.Duration
		if err := rows.Scan(&b.OrderingKey, &b.DeadHeadID, &b.EventName, &b.UserID, &b.Attempts, &b.LastHTTPStatus, &b.LastError,
			&b.CreatedAt, &b.Waiting, &blockedFor); err != nil {
			rows.Close()
			return nil, fmt.Errorf("status: blocked keys: %w", err)
		}
		b.BlockedForSeconds = blockedFor.Seconds()
		if len(out) < limit {
			out = append(out, b)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("status: blocked keys: %w", err)
	}
	return out, nil
}

// countBlockedKeys counts blocked keys and the age in seconds of the
// oldest dead head (0 when none).
func countBlockedKeys(ctx context.Context, pool *pgxpool.Pool) (n int64, oldest float64, err error) {
	row, err := dbsqlc.New(pool).BlockedKeysCount(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("status: blocked keys: %w", err)
	}
	return row.BlockedKeys, row.OldestBlockedSeconds, nil
}
