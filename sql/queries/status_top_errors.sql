-- name: StatusTopErrors :many
-- status_top_errors: failed attempts of the last 24 hours grouped by error
-- text (first 300 characters), most frequent first, at most @max_errors.
SELECT left(error, 300)::text AS error,
       count(*) AS attempts,
       count(DISTINCT outbox_id) AS events,
       max(coalesce(finished_at, started_at))::timestamptz AS last
FROM outbox_attempts
WHERE error IS NOT NULL AND started_at > now() - interval '24 hours'
GROUP BY 1
ORDER BY 2 DESC, 1
LIMIT sqlc.arg(max_errors)::int;
