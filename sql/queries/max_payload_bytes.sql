-- name: MaxPayloadBytes :one
-- max_payload_bytes: the payload limit outbox_enqueue and the attached
-- tables' trigger enforce (outbox_settings, a single row; default 1 MiB),
-- which the relay reads at start-up so it never refuses what the database
-- accepted.
SELECT max_payload_bytes FROM outbox_settings;
