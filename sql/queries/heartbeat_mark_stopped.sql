-- name: HeartbeatMarkStopped :exec
-- heartbeat_mark_stopped: a clean shutdown. The row stays (the console
-- shows "stopped") until it is pruned.
UPDATE outbox_relays
SET stopped_at = now(), last_seen_at = now(), in_flight = 0, breaker_state = sqlc.arg(breaker_state)::text
WHERE relay_id = sqlc.arg(relay_id)::text;
