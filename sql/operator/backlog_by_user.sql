-- backlog_by_user: who is waiting. Pending and in-flight events per Connected
-- User (outbox.user_id), biggest backlog first, at most 50 users.
--
-- Takes no variables:  psql "$DATABASE_URL" -f sql/operator/backlog_by_user.sql
--
-- Columns:
--   pending            events waiting for their next attempt
--   retrying           the pending ones that already failed at least once
--   in_flight          events a relay is sending right now
--   dead               events of this user that gave up (re-drive: outbox-relay retry -user)
--   oldest_created_at  when the user's oldest waiting event was written
--   oldest_age         how long that is ago
--   next_due_at        earliest next_attempt_at of the user's pending events
--
-- Plan: the partial indexes outbox_pending_due and outbox_in_flight_lease
-- hold only waiting rows; dead rows come from outbox_dead. Delivered rows,
-- however many, are not read.
SELECT user_id,
       count(*) FILTER (WHERE status = 'pending')                  AS pending,
       count(*) FILTER (WHERE status = 'pending' AND attempts > 0) AS retrying,
       count(*) FILTER (WHERE status = 'in_flight')                AS in_flight,
       count(*) FILTER (WHERE status = 'dead')                     AS dead,
       min(created_at) FILTER (WHERE status <> 'dead')             AS oldest_created_at,
       now() - min(created_at) FILTER (WHERE status <> 'dead')     AS oldest_age,
       min(next_attempt_at) FILTER (WHERE status = 'pending')      AS next_due_at
FROM outbox
WHERE status IN ('pending', 'in_flight', 'dead')
GROUP BY user_id
HAVING count(*) FILTER (WHERE status IN ('pending', 'in_flight')) > 0
ORDER BY count(*) FILTER (WHERE status IN ('pending', 'in_flight')) DESC,
         min(created_at) FILTER (WHERE status <> 'dead'),
         user_id
LIMIT 50;
