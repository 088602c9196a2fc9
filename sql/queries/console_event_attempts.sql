-- name: ConsoleEventAttempts :many
-- console_event_attempts: every attempt of event @outbox_id, oldest first
-- (primary key). The console computes each duration from started_at and
-- finished_at (NULL while unfinished).
SELECT attempt, relay_id, started_at, finished_at, http_status, error
FROM outbox_attempts
WHERE outbox_id = sqlc.arg(outbox_id)::bigint
ORDER BY attempt;
