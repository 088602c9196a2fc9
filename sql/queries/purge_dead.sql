-- name: PurgeDead :one
-- purge_dead: purge_delivered.sql for dead events written (created_at) more
-- than @older_than_ms milliseconds ago, on the partial index
-- outbox_dead_created_at. A dead event re-driven meanwhile is pending when
-- the lock re-checks it, and is skipped. A dead event that blocks its
-- ordering key (a later event of the key waits behind it) is never purged:
-- release the key first (Skip), or re-drive it. A dead event with nothing
-- behind it is purged after the retention like any other; its key then
-- continues with its next event.
WITH doomed AS MATERIALIZED (
  SELECT id
  FROM outbox
  WHERE status = 'dead'
    AND created_at < now() - sqlc.arg(older_than_ms)::bigint * interval '1 millisecond'
    AND (ordering_key IS NULL OR NOT EXISTS (
         SELECT 1 FROM outbox AS l
         WHERE l.ordering_key = outbox.ordering_key AND l.id > outbox.id
           AND l.status IN ('waiting', 'pending', 'in_flight', 'dead')))
  ORDER BY created_at
  LIMIT sqlc.arg(max_rows)::int
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
SELECT count(*) FROM gone;
