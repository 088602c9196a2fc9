-- Backlog by Connected User: pending and in-flight events per user, oldest first.
SELECT user_id,
       count(*) FILTER (WHERE status = 'pending')   AS pending,
       count(*) FILTER (WHERE status = 'in_flight') AS in_flight,
       min(created_at)                              AS oldest_created_at,
       now() - min(created_at)                      AS oldest_age
FROM outbox
WHERE status IN ('pending', 'in_flight')
GROUP BY user_id
ORDER BY pending + in_flight DESC, user_id
LIMIT 50;
