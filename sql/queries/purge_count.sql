-- name: PurgeCount :one
-- purge_count: what a purge would delete now: delivered events delivered
-- more than @delivered_older_than_ms ago and dead events written more than
-- @dead_older_than_ms ago (milliseconds), skipped events (purge_skipped.sql)
-- included in dead. Each count walks its status's partial index
-- (outbox_delivered_at, outbox_dead_created_at, outbox_skipped). Dead events
-- that block their ordering key are kept, as purge_dead.sql keeps them.
SELECT
  (SELECT count(*) FROM outbox
   WHERE status = 'delivered' AND delivered_at < now() - sqlc.arg(delivered_older_than_ms)::bigint * interval '1 millisecond') AS delivered,
  ((SELECT count(*) FROM outbox
   WHERE status = 'dead' AND created_at < now() - sqlc.arg(dead_older_than_ms)::bigint * interval '1 millisecond'
     AND (ordering_key IS NULL OR NOT EXISTS (
         SELECT 1 FROM outbox AS l
         WHERE l.ordering_key = outbox.ordering_key AND l.id > outbox.id
           AND l.status IN ('waiting', 'pending', 'in_flight', 'dead'))))
  + (SELECT count(*) FROM outbox
     WHERE status = 'skipped' AND created_at < now() - sqlc.arg(dead_older_than_ms)::bigint * interval '1 millisecond'))::bigint AS dead;
