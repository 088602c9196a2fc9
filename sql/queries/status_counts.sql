-- name: StatusCounts :one
-- status_counts: the figures at the top of `outbox-relay status`.
--
-- Like gauges.sql, every subquery names one status so that status's partial
-- index serves it (outbox_pending_due, outbox_in_flight_lease, outbox_dead,
-- outbox_dead_created_at, outbox_key_undelivered for waiting, outbox_skipped); never a whole-table GROUP BY status, which reads
-- every delivered row (seconds at millions of rows). Delivered rows are not
-- counted here: status_delivered.sql counts them while the table is small,
-- and past that the caller estimates them from outbox_rows_estimate
-- (pg_class.reltuples, kept by ANALYZE and autovacuum; -1 before the first).
--
-- oldest_pending_seconds is the age of the oldest event still waiting to be
-- delivered (pending or in flight), oldest_dead_seconds that of the oldest
-- dead event; 0 when there is none.
SELECT
  (SELECT count(*) FROM outbox WHERE status = 'pending')   AS pending,
  (SELECT count(*) FROM outbox WHERE status = 'in_flight') AS in_flight,
  (SELECT count(*) FROM outbox WHERE status = 'dead')      AS dead,
  -- waiting rows all have an ordering key: saying so lets the planner use
  -- outbox_key_undelivered (no index of its own for them).
  (SELECT count(*) FROM outbox WHERE status = 'waiting' AND ordering_key IS NOT NULL) AS waiting,
  (SELECT count(*) FROM outbox WHERE status = 'skipped')   AS skipped,
  coalesce(extract(epoch FROM now() - least(
     (SELECT min(created_at) FROM outbox WHERE status = 'pending'),
     (SELECT min(created_at) FROM outbox WHERE status = 'in_flight')))::float8, 0)::float8 AS oldest_pending_seconds,
  coalesce(extract(epoch FROM now() - (SELECT min(created_at) FROM outbox WHERE status = 'dead'))::float8, 0)::float8 AS oldest_dead_seconds,
  (SELECT c.reltuples FROM pg_catalog.pg_class AS c WHERE c.oid = 'outbox'::regclass)::float8 AS outbox_rows_estimate;
