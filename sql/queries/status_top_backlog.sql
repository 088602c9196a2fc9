-- name: StatusTopBacklog :many
-- status_top_backlog: the @max_users Connected Users with the most events
-- waiting (pending or in flight), then the most dead ones.
--
-- One branch per status so each reads its own partial index: a single
-- `status IN ('pending', 'in_flight', 'dead')` matches no partial index and
-- scans the whole outbox, delivered rows included (see gauges.sql).
WITH undelivered AS (
  SELECT user_id, status FROM outbox WHERE status = 'pending'
  UNION ALL
  SELECT user_id, status FROM outbox WHERE status = 'in_flight'
  UNION ALL
  SELECT user_id, status FROM outbox WHERE status = 'dead'
)
SELECT user_id,
       count(*) FILTER (WHERE status = 'pending')   AS pending,
       count(*) FILTER (WHERE status = 'in_flight') AS in_flight,
       count(*) FILTER (WHERE status = 'dead')      AS dead
FROM undelivered
GROUP BY user_id
ORDER BY count(*) FILTER (WHERE status IN ('pending', 'in_flight')) DESC, count(*) DESC, user_id
LIMIT sqlc.arg(max_users)::int;
