-- failures_by_error: what is failing. Dead events, and events still retrying
-- after a failure (pending or in flight with a last_error), grouped by their
-- last error text, most events first.
--
-- Takes no variables:  psql "$DATABASE_URL" -f sql/operator/failures_by_error.sql
--
-- Columns:
--   last_error          the error text (first 300 characters)
--   last_http_status    Paragon's status with it (NULL: no response)
--   events              dead + retrying
--   dead                events that gave up with this error
--   retrying            events that will be tried again
--   users_affected      distinct Connected Users among them
--   oldest_created_at   when the oldest of these events was written
--   newest_created_at   when the newest was written
--
-- To re-drive one group once its cause is fixed:
--   outbox-relay retry -error 'some distinctive part of the text' -reason '...'
SELECT left(last_error, 300)                        AS last_error,
       last_http_status,
       count(*)                                     AS events,
       count(*) FILTER (WHERE status = 'dead')      AS dead,
       count(*) FILTER (WHERE status <> 'dead')     AS retrying,
       count(DISTINCT user_id)                      AS users_affected,
       min(created_at)                              AS oldest_created_at,
       max(created_at)                              AS newest_created_at
FROM outbox
WHERE status IN ('dead', 'pending', 'in_flight')
  AND last_error IS NOT NULL
GROUP BY left(last_error, 300), last_http_status
ORDER BY events DESC, last_error, last_http_status
LIMIT 100;
