-- name: StatusBlockedKeys :many
-- status_blocked_keys: `outbox-relay status`'s list of blocked keys, oldest first, at most
-- @max_keys. The same statement as the psql script sql/operator/blocked_keys.sql
-- (which explains the columns and the plan), with the limit as a parameter;
-- the last error is truncated in Go (internal/status) rather than with left(),
-- so that sqlc types it as nullable.
--
-- Plan: dead rows through the partial index outbox_dead; per dead row two
-- descents of outbox_key_undelivered. Oldest first, at most 200 keys.
SELECT d.ordering_key,
       d.id AS dead_head_id,
       d.event_name,
       d.user_id,
       d.attempts,
       d.last_http_status,
       d.last_error,
       d.created_at,
       (SELECT count(*)
        FROM outbox AS w
        WHERE w.ordering_key = d.ordering_key AND w.id > d.id
          AND w.status IN ('waiting', 'pending', 'in_flight', 'dead')) AS waiting,
       extract(epoch FROM now() - d.created_at)::float8 AS blocked_for_seconds
FROM outbox AS d
WHERE d.status = 'dead'
  AND d.ordering_key IS NOT NULL
  AND NOT EXISTS (SELECT 1
                  FROM outbox AS e
                  WHERE e.ordering_key = d.ordering_key AND e.id < d.id
                    AND e.status IN ('waiting', 'pending', 'in_flight', 'dead'))
ORDER BY d.created_at, d.id
LIMIT sqlc.arg(max_keys)::int;
