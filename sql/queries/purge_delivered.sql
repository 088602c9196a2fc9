-- name: PurgeDelivered :one
-- purge_delivered: delete up to @max_rows delivered events delivered more
-- than @older_than_ms milliseconds ago, oldest first, and return how many it
-- deleted.
--
-- One short statement per batch, so no long transaction holds locks or
-- keeps old row versions alive: doomed walks the partial index
-- outbox_delivered_at and stops after @max_rows rows; SKIP LOCKED passes over
-- rows someone else holds (another purge) instead of waiting. The DELETE
-- re-checks the status on the locked row. The event's outbox_attempts rows
-- are deleted by the same statement (that table has no foreign key, see
-- migration 00004) and its outbox_redrives rows go by ON DELETE CASCADE.
WITH doomed AS MATERIALIZED (
  SELECT id
  FROM outbox
  WHERE status = 'delivered'
    AND delivered_at < now() - sqlc.arg(older_than_ms)::bigint * interval '1 millisecond'
  ORDER BY delivered_at
  LIMIT sqlc.arg(max_rows)::int
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
SELECT count(*) FROM gone;
