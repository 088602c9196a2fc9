-- name: EventRedrives :many
-- event_redrives: every re-drive of outbox row @outbox_id, oldest first
-- (index outbox_redrives_outbox_id).
SELECT id, redriven_at, redriven_by, reason, previous_status, previous_attempts,
       previous_last_error, previous_last_http_status, action, forced
FROM outbox_redrives
WHERE outbox_id = sqlc.arg(outbox_id)
ORDER BY redriven_at, id;
