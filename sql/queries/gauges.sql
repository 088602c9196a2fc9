-- name: Gauges :one
-- gauges: backlog figures for the relay's metrics, refreshed every few
-- seconds. Every subquery names one status so the planner can use that
-- status's partial index: `status IN ('pending', 'in_flight')` matches no
-- partial index and made PostgreSQL scan the whole outbox (2.6 s with 5M
-- delivered rows, EXPLAIN ANALYZE in docs/BENCHMARKS.md). Delivered rows,
-- however many, are never read.
SELECT
  (SELECT count(*) FROM outbox WHERE status = 'pending')   AS pending,
  (SELECT count(*) FROM outbox WHERE status = 'in_flight') AS in_flight,
  (SELECT count(*) FROM outbox WHERE status = 'dead')      AS dead,
  coalesce(extract(epoch FROM now() - least(
     (SELECT min(created_at) FROM outbox WHERE status = 'pending'),
     (SELECT min(created_at) FROM outbox WHERE status = 'in_flight')))::float8, 0)::float8 AS oldest_pending_seconds;
