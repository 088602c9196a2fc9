-- name: PurgeSkipped :one
-- purge_skipped: purge_delivered.sql for skipped events (dead events an
-- operator skipped to release their ordering key: `outbox-relay skip`)
-- written (created_at) more than @older_than_ms milliseconds ago, kept as
-- long as dead events (RELAY_RETAIN_DEAD). At most @max_rows rows, oldest
-- first, through the partial index outbox_skipped (id order is insertion
-- order; skipped events are few). A skipped event blocks nothing, so unlike
-- a dead one it is purged whatever follows it in its key.
WITH doomed AS MATERIALIZED (
  SELECT id
  FROM outbox
  WHERE status = 'skipped'
    AND created_at < now() - sqlc.arg(older_than_ms)::bigint * interval '1 millisecond'
  ORDER BY id
  LIMIT sqlc.arg(max_rows)::int
  FOR UPDATE SKIP LOCKED
),
gone AS (
  DELETE FROM outbox AS o
  USING doomed AS d
  WHERE o.id = d.id AND o.status = 'skipped'
  RETURNING o.id
),
attempts AS (
  DELETE FROM outbox_attempts WHERE outbox_id IN (SELECT id FROM gone)
)
SELECT count(*) FROM gone;
