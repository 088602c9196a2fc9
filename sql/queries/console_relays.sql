-- name: ConsoleRelays :many
-- console_relays: relay heartbeats (outbox_relays, migration 00006):
-- running ones first, newest first, at most 50.
SELECT relay_id, version, host, started_at, last_seen_at, stopped_at, breaker_state, in_flight,
       extract(epoch FROM now() - last_seen_at)::float8 AS seen_seconds_ago
FROM outbox_relays
ORDER BY stopped_at IS NOT NULL, last_seen_at DESC
LIMIT 50;
