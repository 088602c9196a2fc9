-- Heartbeat statements of the relay (internal/heartbeat), table outbox_relays
-- (migration 00006). sqlc-style names; see internal/namedsql.

-- name: UpsertHeartbeat :exec
-- $1 relay id, $2 version, $3 host, $4 started_at, $5 breaker state,
-- $6 in-flight count. last_seen_at is the database's clock, so relays on
-- hosts with skewed clocks still compare fairly in the console.
INSERT INTO outbox_relays (relay_id, version, host, started_at, last_seen_at, stopped_at, breaker_state, in_flight)
VALUES ($1, $2, $3, $4, now(), NULL, $5, $6)
ON CONFLICT (relay_id) DO UPDATE
SET last_seen_at  = now(),
    stopped_at    = NULL,
    breaker_state = excluded.breaker_state,
    in_flight     = excluded.in_flight;

-- name: MarkStopped :exec
-- A clean shutdown: the row stays (the console shows "stopped") until it is
-- pruned.
UPDATE outbox_relays
SET stopped_at = now(), last_seen_at = now(), in_flight = 0, breaker_state = $2
WHERE relay_id = $1;

-- name: PruneHeartbeats :execrows
-- Rows of relays not seen for $1 (an interval) go.
DELETE FROM outbox_relays WHERE last_seen_at < now() - $1::interval;
