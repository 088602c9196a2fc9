-- blocked_keys: ordering keys whose next event is dead. Events with an
-- ordering key go out one after the other, in commit order; while the
-- first undelivered event of a key is dead, every later event of that key
-- waits (other keys and unkeyed events are not affected). Each row is one
-- blocked key with the dead event that blocks it.
--
-- Takes no variables:  psql "$DATABASE_URL" -f sql/operator/blocked_keys.sql
--
-- Unblock a key by re-driving its dead head once the cause is fixed
-- (`outbox-relay retry -id <dead_head_id>`: it is sent, then the events
-- behind it, in order) or by releasing it (`outbox-relay skip -key <key>`:
-- the dead head is marked skipped and never sent, the events behind it go
-- out). Both are recorded in outbox_redrives with who and why.
--
-- Columns: ordering_key; the blocking event (dead_head_id, event_name,
-- user_id, attempts, last_http_status, last_error, created_at); waiting:
-- how many later events of the key wait behind it; blocked_for: age of
-- the dead head (how long the key has had an undelivered event).
--
-- Plan: dead rows through the partial index outbox_dead; per dead row two
-- descents of outbox_key_undelivered. Oldest first, at most 200 keys.
SELECT d.ordering_key,
       d.id AS dead_head_id,
       d.event_name,
       d.user_id,
       d.attempts,
       d.last_http_status,
       left(d.last_error, 300) AS last_error,
       d.created_at,
       (SELECT count(*)
        FROM outbox AS w
        WHERE w.ordering_key = d.ordering_key AND w.id > d.id
          AND w.status IN ('waiting', 'pending', 'in_flight', 'dead')) AS waiting,
       now() - d.created_at AS blocked_for
FROM outbox AS d
WHERE d.status = 'dead'
  AND d.ordering_key IS NOT NULL
  AND NOT EXISTS (SELECT 1
                  FROM outbox AS e
                  WHERE e.ordering_key = d.ordering_key AND e.id < d.id
                    AND e.status IN ('waiting', 'pending', 'in_flight', 'dead'))
ORDER BY d.created_at, d.id
LIMIT 200;
