-- name: Skip :many
-- skip: release ordering keys blocked by dead events. The dead events
-- selected (@ids, and every dead event of the ordering keys @keys) become
-- 'skipped' (terminal: they are never sent), each is recorded in
-- outbox_redrives with action 'skip', who (@skipped_by) and why (@reason,
-- NULL allowed), and the next undelivered event of each key, if it is
-- waiting, becomes pending (due now). Compare-and-set like redrive.sql: rows
-- are locked in id order and change only while still dead.
WITH target AS MATERIALIZED (
  SELECT o.id, o.user_id, o.ordering_key, o.attempts, o.last_error, o.last_http_status
  FROM outbox AS o
  WHERE o.status = 'dead'
    AND (o.id = ANY (sqlc.arg(ids)::bigint[]) OR o.ordering_key = ANY (sqlc.arg(keys)::text[]))
  ORDER BY o.id
  FOR UPDATE OF o
),
moved AS (
  UPDATE outbox AS o
  SET status = 'skipped'
  FROM target AS t
  WHERE o.id = t.id AND o.status = 'dead'
  RETURNING o.id, o.ordering_key, t.user_id, t.attempts, t.last_error, t.last_http_status
),
nexts AS MATERIALIZED (
  SELECT m.id,
         (SELECT n.id
          FROM outbox AS n
          WHERE n.ordering_key = m.ordering_key AND n.id > m.id
            AND n.status IN ('waiting', 'pending', 'in_flight', 'dead')
          ORDER BY n.id
          LIMIT 1) AS next_id
  FROM moved AS m
  WHERE m.ordering_key IS NOT NULL
),
promoted AS (
  UPDATE outbox AS w
  SET status = 'pending', next_attempt_at = now()
  WHERE w.id = ANY (ARRAY(SELECT next_id FROM nexts))
    AND w.status = 'waiting'
  RETURNING w.id
),
logged AS (
  INSERT INTO outbox_redrives (outbox_id, redriven_by, reason, previous_status,
                               previous_attempts, previous_last_error, previous_last_http_status, action)
  SELECT id, sqlc.arg(skipped_by)::text, sqlc.narg(reason)::text, 'dead', attempts, last_error, last_http_status, 'skip'
  FROM moved
)
SELECT m.id, m.user_id, m.ordering_key, p.id AS promoted
FROM moved AS m
LEFT JOIN nexts AS x ON x.id = m.id
LEFT JOIN promoted AS p ON p.id = x.next_id
ORDER BY m.id;
