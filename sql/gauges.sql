-- gauges: backlog figures for the relay's metrics, refreshed every few
-- seconds. Each count walks only a partial index (pending, in-flight, dead),
-- never the delivered rows, so it stays cheap with millions delivered.
SELECT
  (SELECT count(*) FROM outbox WHERE status = 'pending')   AS pending,
  (SELECT count(*) FROM outbox WHERE status = 'in_flight') AS in_flight,
  (SELECT count(*) FROM outbox WHERE status = 'dead')      AS dead,
  coalesce(extract(epoch FROM now() - (
     SELECT min(created_at) FROM outbox WHERE status IN ('pending', 'in_flight')))::float8, 0) AS oldest_pending_seconds
