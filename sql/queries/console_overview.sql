-- name: ConsoleOverview :one
-- console_overview: the first block of the console's overview page.
-- Counts by status from the partial indexes, one subquery per status
-- (waiting: behind an earlier event of its ordering key, counted through
-- outbox_key_undelivered; skipped: dead events an operator released,
-- through outbox_skipped, migration 00013; `status IN (...)` would match no
-- partial index, see gauges.sql). Delivered rows are counted up to @delivered_cap through
-- outbox_delivered_at; past that the page says "more than". Oldest
-- undelivered: pending or in-flight. Latency of the deliveries of the last
-- @latency_window_ms milliseconds: delivered_at - created_at, where
-- created_at is the start of the transaction that wrote the lead.
--
-- Run with its actual values like every console_* query (the console's
-- store passes pgx QueryExecModeExec): see console_list_events.sql.
SELECT now()::timestamptz AS now,
  (SELECT count(*) FROM outbox WHERE status = 'waiting' AND ordering_key IS NOT NULL) AS waiting,
  (SELECT count(*) FROM outbox WHERE status = 'pending')   AS pending,
  (SELECT count(*) FROM outbox WHERE status = 'in_flight') AS in_flight,
  (SELECT count(*) FROM outbox WHERE status = 'dead')      AS dead,
  (SELECT count(*) FROM outbox WHERE status = 'skipped')   AS skipped,
  (SELECT count(*) FROM (SELECT 1 FROM outbox WHERE status = 'delivered' AND delivered_at IS NOT NULL
                         ORDER BY delivered_at DESC LIMIT sqlc.arg(delivered_cap)::bigint) AS d) AS delivered_capped,
  coalesce(extract(epoch FROM now() - least(
     (SELECT min(created_at) FROM outbox WHERE status = 'pending'),
     (SELECT min(created_at) FROM outbox WHERE status = 'in_flight')))::float8, 0)::float8 AS oldest_undelivered_seconds,
  (SELECT min(id) FROM outbox WHERE status = 'pending'
     AND created_at = (SELECT min(created_at) FROM outbox WHERE status = 'pending')) AS oldest_pending_id,
  l.delivered AS latency_count,
  l.p[1] AS p50_seconds, l.p[2] AS p90_seconds, l.p[3] AS p99_seconds, l.max_seconds
FROM (
  SELECT count(*) AS delivered,
         percentile_cont(ARRAY[0.5, 0.9, 0.99]::float8[]) WITHIN GROUP (ORDER BY extract(epoch FROM delivered_at - created_at)::float8) AS p,
         max(extract(epoch FROM delivered_at - created_at)::float8) AS max_seconds
  FROM outbox
  WHERE status = 'delivered' AND delivered_at >= now() - sqlc.arg(latency_window_ms)::bigint * interval '1 millisecond'
) AS l;
