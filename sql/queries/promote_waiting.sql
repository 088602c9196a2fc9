-- name: PromoteWaiting :one
-- promote_waiting: the relay's sweep for waiting events whose key has no
-- undelivered event before them any more, made pending (due now).
--
-- record_results promotes the next event of a key when its head is
-- delivered, but it cannot see an event whose writer had not committed
-- yet when it ran (the writer saw the head undelivered and wrote
-- 'waiting'); an operator's skip or purge can free a key too. This sweep
-- catches them: it walks ordering keys with undelivered events in key
-- order, after @cursor (the empty string starts from the first key), at most
-- @max_keys keys,
-- one descent of outbox_key_undelivered per key (a skip scan), and
-- promotes each key whose first undelivered event is waiting.
--
-- Returns how many it promoted, how many keys it visited and the last key
-- visited (the next cursor; start over when fewer than @max_keys were visited).
WITH RECURSIVE heads (ordering_key, id, status) AS (
  (SELECT ordering_key, id, status
   FROM outbox
   WHERE ordering_key > sqlc.arg(cursor)::text AND status IN ('waiting', 'pending', 'in_flight', 'dead')
   ORDER BY ordering_key, id
   LIMIT 1)
  UNION ALL
  SELECT nx.ordering_key, nx.id, nx.status
  FROM heads AS h
  CROSS JOIN LATERAL (
    SELECT o.ordering_key, o.id, o.status
    FROM outbox AS o
    WHERE o.ordering_key > h.ordering_key AND o.status IN ('waiting', 'pending', 'in_flight', 'dead')
    ORDER BY o.ordering_key, o.id
    LIMIT 1
  ) AS nx
),
visited AS MATERIALIZED (
  SELECT ordering_key, id, status FROM heads LIMIT sqlc.arg(max_keys)::int
),
promoted AS (
  UPDATE outbox AS o
  SET status = 'pending', next_attempt_at = now()
  WHERE o.id = ANY (ARRAY(SELECT id FROM visited WHERE status = 'waiting'))
    AND o.status = 'waiting'
  RETURNING o.id
)
SELECT (SELECT count(*) FROM promoted) AS promoted,
       (SELECT count(*) FROM visited) AS visited,
       coalesce((SELECT max(ordering_key) FROM visited), '')::text AS last_key;
