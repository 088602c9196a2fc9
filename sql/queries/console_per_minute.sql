-- name: ConsolePerMinute :many
-- console_per_minute: deliveries (outbox_delivered_at) and failed attempts
-- (outbox_attempts_failed_started_at) per minute over the last @minutes
-- minutes, oldest first, the current minute last and partial; empty
-- minutes are 0.
WITH minutes AS (
  SELECT generate_series(date_trunc('minute', now()) - (sqlc.arg(minutes)::int - 1) * interval '1 minute',
                         date_trunc('minute', now()), interval '1 minute') AS minute
),
d AS (
  SELECT date_trunc('minute', delivered_at) AS minute, count(*) AS n
  FROM outbox
  WHERE status = 'delivered' AND delivered_at >= date_trunc('minute', now()) - (sqlc.arg(minutes)::int - 1) * interval '1 minute'
  GROUP BY 1
),
f AS (
  SELECT date_trunc('minute', started_at) AS minute, count(*) AS n
  FROM outbox_attempts
  WHERE error IS NOT NULL AND started_at >= date_trunc('minute', now()) - (sqlc.arg(minutes)::int - 1) * interval '1 minute'
  GROUP BY 1
)
SELECT m.minute::timestamptz AS minute, coalesce(d.n, 0)::bigint AS delivered, coalesce(f.n, 0)::bigint AS failed
FROM minutes AS m
LEFT JOIN d ON d.minute = m.minute
LEFT JOIN f ON f.minute = m.minute
ORDER BY m.minute;
