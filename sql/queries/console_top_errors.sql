-- name: ConsoleTopErrors :many
-- console_top_errors: failed attempts of the last @window_ms milliseconds
-- by error text, most attempts first, at most @max_errors; from
-- outbox_attempts_failed_started_at.
SELECT left(error, 300)::text                   AS error,
       count(*)                                 AS attempts,
       count(DISTINCT outbox_id)                AS events,
       max(started_at)::timestamptz             AS last_at
FROM outbox_attempts
WHERE error IS NOT NULL AND started_at >= now() - sqlc.arg(window_ms)::bigint * interval '1 millisecond'
GROUP BY 1
ORDER BY 2 DESC, 1
LIMIT sqlc.arg(max_errors)::int;
