-- name: HeartbeatUpsert :exec
-- heartbeat_upsert: a relay's heartbeat in outbox_relays (migration 00006),
-- written every interval by internal/heartbeat. last_seen_at is the
-- database's clock, so relays on hosts with skewed clocks still compare
-- fairly in the console.
INSERT INTO outbox_relays (relay_id, version, host, started_at, last_seen_at, stopped_at, breaker_state, in_flight)
VALUES (sqlc.arg(relay_id)::text, sqlc.arg(version)::text, sqlc.arg(host)::text, sqlc.arg(started_at)::timestamptz,
        now(), NULL, sqlc.arg(breaker_state)::text, sqlc.arg(in_flight)::int)
ON CONFLICT (relay_id) DO UPDATE
SET last_seen_at  = now(),
    stopped_at    = NULL,
    breaker_state = excluded.breaker_state,
    in_flight     = excluded.in_flight;
