package operator

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/config"
	"github.com/paragon-outbox/outbox-relay/internal/dbsqlc"
)

// Purge defaults: the settings' defaults, declared in package config.
const (
	// DefaultDeliveredAge: delivered events are kept 7 days after delivery
	// (RELAY_RETAIN_DELIVERED).
	DefaultDeliveredAge = config.DefaultRetainDelivered
	// DefaultDeadAge: dead events are kept 30 days after they were written,
	// long enough to find and re-drive them (RELAY_RETAIN_DEAD).
	DefaultDeadAge = config.DefaultRetainDead
	// DefaultPurgeBatch is how many rows one delete statement removes (500).
	DefaultPurgeBatch = config.DefaultPurgeBatch
)

// The statements are sql/queries/purge_delivered.sql, purge_dead.sql,
// purge_skipped.sql and purge_count.sql (run through package dbsqlc); their comments say why they
// are shaped so.

// purgeArgs applies the documented defaults.
func purgeArgs(deliveredOlderThan, deadOlderThan time.Duration, batch int) (time.Duration, time.Duration, int, error) {
	if deliveredOlderThan < 0 || deadOlderThan < 0 || batch < 0 {
		return 0, 0, 0, fmt.Errorf("purge: ages and batch must not be negative (got %s, %s, %d)", deliveredOlderThan, deadOlderThan, batch)
	}
	if deliveredOlderThan == 0 {
		deliveredOlderThan = DefaultDeliveredAge
	}
	if deadOlderThan == 0 {
		deadOlderThan = DefaultDeadAge
	}
	if batch == 0 {
		batch = DefaultPurgeBatch
	}
	return deliveredOlderThan, deadOlderThan, batch, nil
}

// Purge deletes delivered events whose delivered_at is more than
// deliveredOlderThan ago and dead and skipped events whose created_at is
// more than deadOlderThan ago (database clock), with their attempts. It
// never deletes pending, waiting or in-flight events, nor a dead event that
// blocks its ordering key.
//
// It works in batches of at most batch rows, each its own short statement
// and transaction, and goes on until a batch comes back smaller than batch
// (so it finishes even while new rows age in). Zero arguments take the
// defaults: DefaultDeliveredAge (7 days), DefaultDeadAge (30 days),
// DefaultPurgeBatch (500); negative ones are an error. It returns how many
// events it deleted, including those deleted before an error or a
// cancelled ctx stopped it.
func Purge(ctx context.Context, pool *pgxpool.Pool, deliveredOlderThan, deadOlderThan time.Duration, batch int) (deleted int64, err error) {
	deliveredOlderThan, deadOlderThan, batch, err = purgeArgs(deliveredOlderThan, deadOlderThan, batch)
	if err != nil {
		return 0, err
	}
	q := dbsqlc.New(pool)
	for _, step := range []struct {
		what  string
		purge func(ctx context.Context, olderThanMs int64, maxRows int32) (int64, error)
		age   time.Duration
	}{
		{"delivered", q.PurgeDelivered, deliveredOlderThan},
		{"dead", q.PurgeDead, deadOlderThan},
		{"skipped", q.PurgeSkipped, deadOlderThan},
	} {
		for {
			if err := ctx.Err(); err != nil {
				return deleted, fmt.Errorf("purge %s events: %w", step.what, err)
			}
			n, err := purgeBatch(ctx, step.purge, step.age, batch)
			deleted += n
			if err != nil {
				return deleted, fmt.Errorf("purge %s events: %w", step.what, err)
			}
			if n < int64(batch) {
				break
			}
		}
	}
	return deleted, nil
}

func purgeBatch(ctx context.Context, purge func(context.Context, int64, int32) (int64, error), age time.Duration, batch int) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, statementTimeout)
	defer cancel()
	return purge(ctx, age.Milliseconds(), int32(min(batch, math.MaxInt32)))
}

// Purgeable counts the delivered and dead events Purge would delete now with
// the same ages (zero = default), for a dry run. Read-only.
func Purgeable(ctx context.Context, pool *pgxpool.Pool, deliveredOlderThan, deadOlderThan time.Duration) (delivered, dead int64, err error) {
	deliveredOlderThan, deadOlderThan, _, err = purgeArgs(deliveredOlderThan, deadOlderThan, 0)
	if err != nil {
		return 0, 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, statementTimeout)
	defer cancel()
	n, err := dbsqlc.New(pool).PurgeCount(ctx, deliveredOlderThan.Milliseconds(), deadOlderThan.Milliseconds())
	if err != nil {
		return 0, 0, fmt.Errorf("purge dry run: %w", err)
	}
	return n.Delivered, n.Dead, nil
}
