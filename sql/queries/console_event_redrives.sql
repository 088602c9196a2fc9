-- name: ConsoleEventRedrives :many
-- console_event_redrives: every re-drive (or skip) of event @outbox_id,
-- oldest first (outbox_redrives_outbox_id).
SELECT redriven_at, redriven_by, action, coalesce(reason, '')::text AS reason, previous_status, previous_attempts,
       previous_last_error, previous_last_http_status
FROM outbox_redrives
WHERE outbox_id = sqlc.arg(outbox_id)::bigint
ORDER BY redriven_at, id;
