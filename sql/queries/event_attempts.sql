-- name: EventAttempts :many
-- event_attempts: every attempt of outbox row @outbox_id, by attempt number
-- (primary key order).
SELECT attempt, relay_id, started_at, finished_at, http_status, error
FROM outbox_attempts
WHERE outbox_id = sqlc.arg(outbox_id)
ORDER BY attempt;
