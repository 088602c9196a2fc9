-- name: StatusRecentErrors :many
-- status_recent_errors: the @max_errors most recent failed attempts, with the
-- event's user and current status.
SELECT a.outbox_id, a.attempt, o.user_id, o.status, a.http_status,
       left(a.error, 300)::text AS error,
       coalesce(a.finished_at, a.started_at)::timestamptz AS at
FROM outbox_attempts AS a
JOIN outbox AS o ON o.id = a.outbox_id
WHERE a.error IS NOT NULL
ORDER BY coalesce(a.finished_at, a.started_at) DESC
LIMIT sqlc.arg(max_errors)::int;
