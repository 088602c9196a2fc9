package operator

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/config"
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

// qPurgeDelivered deletes up to $2 delivered events delivered more than $1
// milliseconds ago, oldest first, and returns how many it deleted.
//
// One short statement per batch, so no long transaction holds locks or
// keeps old row versions alive: doomed walks the partial index
// outbox_delivered_at and stops after $2 rows; SKIP LOCKED passes over rows
// someone else holds (another purge) instead of waiting. The DELETE
// re-checks the status on the locked row. The event's outbox_attempts rows
// are deleted by the same statement (that table has no foreign key, see
// migration 00004) and its outbox_redrives rows go by ON DELETE CASCADE.
const qPurgeDelivered = `
WITH doomed AS MATERIALIZED (
  SELECT id
  FROM outbox
  WHERE status = 'delivered'
    AND delivered_at < now() - $1::bigint * interval '1 millisecond'
  ORDER BY delivered_at
  LIMIT $2
  FOR UPDATE SKIP LOCKED
),
gone AS (
  DELETE FROM outbox AS o
  USING doomed AS d
  WHERE o.id = d.id AND o.status = 'delivered'
  RETURNING o.id
),
attempts AS (
  DELETE FROM outbox_attempts WHERE outbox_id IN (SELECT id FROM gone)
)
SELECT count(*) FROM gone`

// qPurgeDead is qPurgeDelivered for dead events written (created_at) more
// than $1 milliseconds ago, on the partial index outbox_dead_created_at. A
// dead event re-driven meanwhile is pending when the lock re-checks it, and
// is skipped. A dead event that blocks its ordering key (a later event of
// the key waits behind it) is never purged: release the key first (Skip),
// or re-drive it. A dead event with nothing behind it is purged after the
// retention like any other; its key then continues with its next event.
const qPurgeDead = `
WITH doomed AS MATERIALIZED (
  SELECT id
  FROM outbox
  WHERE status = 'dead'
    AND created_at < now() - $1::bigint * interval '1 millisecond'
    AND (ordering_key IS NULL OR NOT EXISTS (
         SELECT 1 FROM outbox AS l
         WHERE l.ordering_key = outbox.ordering_key AND l.id > outbox.id
           AND l.status IN ('waiting', 'pending', 'in_flight', 'dead')))
  ORDER BY created_at
  LIMIT $2
  FOR UPDATE SKIP LOCKED
),
gone AS (
  DELETE FROM outbox AS o
  USING doomed AS d
  WHERE o.id = d.id AND o.status = 'dead'
  RETURNING o.id
),
attempts AS (
  DELETE FROM outbox_attempts WHERE outbox_id IN (SELECT id FROM gone)
)
SELECT count(*) FROM gone`

// qPurgeCount counts what Purge would delete now: delivered events
// delivered more than $1 ms ago and dead events written more than $2 ms ago.
const qPurgeCount = `
SELECT
  (SELECT count(*) FROM outbox
   WHERE status = 'delivered' AND delivered_at < now() - $1::bigint * interval '1 millisecond'),
  (SELECT count(*) FROM outbox
   WHERE status = 'dead' AND created_at < now() - $2::bigint * interval '1 millisecond'
     AND (ordering_key IS NULL OR NOT EXISTS (
         SELECT 1 FROM outbox AS l
         WHERE l.ordering_key = outbox.ordering_key AND l.id > outbox.id
           AND l.status IN ('waiting', 'pending', 'in_flight', 'dead'))))`

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
// deliveredOlderThan ago and dead events whose created_at is more than
// deadOlderThan ago (database clock), with their attempts and re-drives. It
// never deletes pending or in-flight events.
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
	for _, step := range []struct {
		what  string
		query string
		age   time.Duration
	}{
		{"delivered", qPurgeDelivered, deliveredOlderThan},
		{"dead", qPurgeDead, deadOlderThan},
	} {
		for {
			if err := ctx.Err(); err != nil {
				return deleted, fmt.Errorf("purge %s events: %w", step.what, err)
			}
			n, err := purgeBatch(ctx, pool, step.query, step.age, batch)
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

func purgeBatch(ctx context.Context, pool *pgxpool.Pool, q string, age time.Duration, batch int) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, statementTimeout)
	defer cancel()
	var n int64
	if err := pool.QueryRow(ctx, q, age.Milliseconds(), batch).Scan(&n); err != nil {
		return 0, err
	}
	return n, nil
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
	err = pool.QueryRow(ctx, qPurgeCount, deliveredOlderThan.Milliseconds(), deadOlderThan.Milliseconds()).Scan(&delivered, &dead)
	if err != nil {
		return 0, 0, fmt.Errorf("purge dry run: %w", err)
	}
	return delivered, dead, nil
}
