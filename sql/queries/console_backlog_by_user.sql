-- name: ConsoleBacklogByUser :many
-- console_backlog_by_user: pending, in-flight and dead events per Connected
-- User, biggest backlog first, at most @max_users users. Each branch reads
-- one status's partial index; delivered rows are never read.
SELECT user_id,
       sum(pending)::bigint   AS pending,
       sum(in_flight)::bigint AS in_flight,
       sum(dead)::bigint      AS dead,
       min(oldest)            AS oldest_undelivered
FROM (
  SELECT user_id, count(*) AS pending, 0 AS in_flight, 0 AS dead, min(created_at) AS oldest
  FROM outbox WHERE status = 'pending' GROUP BY user_id
  UNION ALL
  SELECT user_id, 0, count(*), 0, min(created_at)
  FROM outbox WHERE status = 'in_flight' GROUP BY user_id
  UNION ALL
  SELECT user_id, 0, 0, count(*), NULL
  FROM outbox WHERE status = 'dead' GROUP BY user_id
) AS s
GROUP BY user_id
ORDER BY sum(pending) + sum(in_flight) DESC, sum(dead) DESC, user_id
LIMIT sqlc.arg(max_users)::int;
