package status

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/dbsqlc"
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

// blockedKeys lists blocked keys, oldest first, at most limit of them
// (sql/queries/status_blocked_keys.sql: the statement of the psql script
// sql/operator/blocked_keys.sql, limit as a parameter). Last errors are cut
// to 300 characters.
func blockedKeys(ctx context.Context, pool *pgxpool.Pool, limit int) ([]BlockedKey, error) {
	rows, err := dbsqlc.New(pool).StatusBlockedKeys(ctx, int32(min(limit, math.MaxInt32)))
	if err != nil {
		return nil, fmt.Errorf("status: blocked keys: %w", err)
	}
	out := make([]BlockedKey, 0, len(rows))
	for _, r := range rows {
		b := BlockedKey{
			DeadHeadID: r.DeadHeadID, EventName: r.EventName, UserID: r.UserID, Attempts: r.Attempts,
			LastHTTPStatus: r.LastHTTPStatus, LastError: r.LastError, CreatedAt: r.CreatedAt,
			Waiting: r.Waiting, BlockedForSeconds: r.BlockedForSeconds,
		}
		if r.OrderingKey != nil {
			b.OrderingKey = *r.OrderingKey
		}
		if b.LastError != nil {
			if rs := []rune(*b.LastError); len(rs) > 300 {
				cut := string(rs[:300])
				b.LastError = &cut
			}
		}
		out = append(out, b)
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
