-- name: PurgeDead :one
-- purge_dead: purge_delivered.sql for dead events written (created_at) more
-- than @older_than_ms milliseconds ago, on the partial index
-- outbox_dead_created_at. A dead event re-driven meanwhile is pending when
-- the lock re-checks it, and is skipped. A dead event that blocks its
-- ordering key (a later event of the key waits behind it) is never purged:
-- release the key first (Skip), or re-drive it. A dead event with nothing
-- behind it is purged after the retention like any other; its key then
-- continues with its next event. A key whose next event is being written
-- by outbox_enqueue at that moment (uncommitted, so invisible here) is
-- left for the next purge: the purge takes the key's advisory lock, the one
-- outbox_enqueue holds until its transaction ends, with a try-lock. (A Lead
-- Updated/Deleted event written by a lead trigger is ordered by the lead's
-- row lock instead, which the purge does not take: one racing the purge of
-- its lead's 30-day-old dead head is sent, as it would be a moment later.)
WITH doomed AS MATERIALIZED (
  SELECT id
  FROM outbox
  WHERE status = 'dead'
    AND created_at < now() - sqlc.arg(older_than_ms)::bigint * interval '1 millisecond'
    AND (ordering_key IS NULL OR NOT EXISTS (
         SELECT 1 FROM outbox AS l
         WHERE l.ordering_key = outbox.ordering_key AND l.id > outbox.id
           AND l.status IN ('waiting', 'pending', 'in_flight', 'dead'))
         -- An event of the key being written right now (outbox_enqueue holds
         -- this lock until its transaction ends) is not visible to the check
         -- above: leave the key's dead head for the next purge.
         AND pg_try_advisory_xact_lock(1869967988, hashtext(outbox.ordering_key)))
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
