-- name: PromoteWaiting :one
-- promote_waiting: the relay's sweep for waiting events whose key has no
-- undelivered event before them any more, made pending (due now).
--
-- record_results promotes the next event of a key when its head is
-- delivered, but it cannot see an event whose writer had not committed
-- yet when it ran (the writer saw the head undelivered and wrote
-- 'waiting'); an operator's skip or purge can free a key too. This sweep
-- catches them: it walks the ordering keys that have a waiting event, in key
-- order, after @cursor (the empty string starts from the first key), at most
-- @max_keys keys: one descent of the small partial index outbox_waiting per
-- key (a skip scan; with nothing waiting, one empty index page). A key's
-- first waiting event is promoted when no event of the key before it is
-- pending, in flight or dead (one probe of outbox_key_undelivered).
--
-- Returns how many it promoted, how many keys it visited and the last key
-- visited (the next cursor; start over when fewer than @max_keys were visited).
WITH RECURSIVE heads (ordering_key, id) AS (
  (SELECT ordering_key, id
   FROM outbox
   WHERE ordering_key > sqlc.arg(cursor)::text AND status = 'waiting'
   ORDER BY ordering_key, id
   LIMIT 1)
  UNION ALL
  SELECT nx.ordering_key, nx.id
  FROM heads AS h
  CROSS JOIN LATERAL (
    SELECT o.ordering_key, o.id
    FROM outbox AS o
    WHERE o.ordering_key > h.ordering_key AND o.status = 'waiting'
    ORDER BY o.ordering_key, o.id
    LIMIT 1
  ) AS nx
),
visited AS MATERIALIZED (
  SELECT ordering_key, id FROM heads LIMIT sqlc.arg(max_keys)::int
),
promoted AS (
  UPDATE outbox AS o
  SET status = 'pending', next_attempt_at = now()
  WHERE o.id = ANY (ARRAY(
      SELECT v.id FROM visited AS v
      WHERE NOT EXISTS (
        SELECT 1 FROM outbox AS e
        WHERE e.ordering_key = v.ordering_key AND e.id < v.id
          AND e.status IN ('waiting', 'pending', 'in_flight', 'dead'))))
    AND o.status = 'waiting'
  RETURNING o.id
)
SELECT (SELECT count(*) FROM promoted) AS promoted,
       (SELECT count(*) FROM visited) AS visited,
       coalesce((SELECT max(ordering_key) FROM visited), '')::text AS last_key;
