-- name: ConsoleEvent :one
-- console_event: one event (@id, primary key) for the console's event
-- page; the payload pretty-printed by PostgreSQL unless @hide_payload.
SELECT id, event_id::text AS event_id, event_name, user_id, lead_id, ordering_key, status, attempts, attempts_base,
       created_at, next_attempt_at, delivered_at, last_http_status, last_error, lease_owner, lease_expires_at,
       CASE WHEN sqlc.arg(hide_payload)::bool THEN NULL ELSE jsonb_pretty(payload) END AS payload
FROM outbox
WHERE id = sqlc.arg(id)::bigint;
