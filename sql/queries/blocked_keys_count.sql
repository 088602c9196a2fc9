-- name: BlockedKeysCount :one
-- blocked_keys_count: how many ordering keys are blocked (their first
-- undelivered event is dead, so every later event of the key waits) and
-- the age in seconds of the oldest such dead head (0 when none). Read by
-- the relay's gauges (outbox_relay_blocked_keys,
-- outbox_relay_oldest_blocked_key_age_seconds) and by `outbox-relay
-- status`. Dead rows only (partial index outbox_dead), one descent of
-- outbox_key_undelivered each.
SELECT count(*) AS blocked_keys,
       coalesce(extract(epoch FROM now() - min(d.created_at))::float8, 0)::float8 AS oldest_blocked_seconds
FROM outbox AS d
WHERE d.status = 'dead'
  AND d.ordering_key IS NOT NULL
  AND NOT EXISTS (SELECT 1
                  FROM outbox AS e
                  WHERE e.ordering_key = d.ordering_key AND e.id < d.id
                    AND e.status IN ('waiting', 'pending', 'in_flight', 'dead'));
