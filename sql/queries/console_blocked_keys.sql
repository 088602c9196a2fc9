-- name: ConsoleBlockedKeys :many
-- console_blocked_keys: ordering keys held back by a dead event: the dead
-- event is the key's head (no earlier undelivered event of the key) and
-- events of the key wait behind it. Dead rows are few (outbox_dead); each
-- key is probed through outbox_key_undelivered. blocked_seconds counts
-- from the dead event's last attempt. At most @max_keys keys, most waiting
-- first.
SELECT d.ordering_key::text AS key, d.user_id, d.id AS head_id,
       w.waiting,
       extract(epoch FROM now() - coalesce(
         (SELECT max(coalesce(a.finished_at, a.started_at)) FROM outbox_attempts AS a WHERE a.outbox_id = d.id),
         d.created_at))::float8 AS blocked_seconds
FROM outbox AS d
CROSS JOIN LATERAL (
  SELECT count(*) AS waiting FROM outbox AS e
  WHERE e.ordering_key = d.ordering_key AND e.status = 'waiting' AND e.ordering_key IS NOT NULL
) AS w
WHERE d.status = 'dead' AND d.ordering_key IS NOT NULL
  AND w.waiting > 0
  AND NOT EXISTS (
    SELECT 1 FROM outbox AS e
    WHERE e.ordering_key = d.ordering_key AND e.id < d.id AND e.ordering_key IS NOT NULL
      AND e.status IN ('waiting', 'pending', 'in_flight', 'dead'))
ORDER BY w.waiting DESC, d.id
LIMIT sqlc.arg(max_keys)::int;
