-- name: HeartbeatPrune :execrows
-- heartbeat_prune: rows of relays not seen for @retain_ms milliseconds go.
DELETE FROM outbox_relays
WHERE last_seen_at < now() - sqlc.arg(retain_ms)::bigint * interval '1 millisecond';
