-- deliveries_per_minute: delivery throughput over the last hour, one row per
-- minute (60 rows, oldest first, the current minute last and partial),
-- minutes without deliveries included with 0. Minutes are in the session's
-- TimeZone.
--
-- Takes no variables:  psql "$DATABASE_URL" -f sql/operator/deliveries_per_minute.sql
--
-- Columns:
--   minute                start of the minute
--   delivered             events Paragon accepted in that minute (outbox.delivered_at)
--   avg_time_to_deliver   mean delivered_at - created_at of those events
--   max_time_to_deliver   the slowest of them
--
-- Plan: a range scan of the partial index outbox_delivered_at (delivered
-- rows by delivered_at); purged events are gone and no longer counted.
WITH minutes AS (
  SELECT generate_series(date_trunc('minute', now()) - interval '59 minutes',
                         date_trunc('minute', now()),
                         interval '1 minute') AS minute
),
delivered AS (
  SELECT date_trunc('minute', delivered_at)  AS minute,
         count(*)                            AS delivered,
         avg(delivered_at - created_at)      AS avg_time_to_deliver,
         max(delivered_at - created_at)      AS max_time_to_deliver
  FROM outbox
  WHERE status = 'delivered'
    AND delivered_at >= date_trunc('minute', now()) - interval '59 minutes'
  GROUP BY 1
)
SELECT m.minute,
       coalesce(d.delivered, 0) AS delivered,
       d.avg_time_to_deliver,
       d.max_time_to_deliver
FROM minutes AS m
LEFT JOIN delivered AS d ON d.minute = m.minute
ORDER BY m.minute;
