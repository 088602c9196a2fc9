-- name: RecordResults :many
-- record_results: write the outcome of a batch of attempts in one statement.
--
-- @relay_id; arrays, one element per attempt:
-- @ids outbox ids, @attempts attempt numbers, @outcomes ('delivered' | 'retry' |
-- 'dead'), @http_statuses (0 when there was no response, stored as NULL), @errors
-- ('' on success, stored as NULL), @started_ats, @finished_ats, @retry_delays_ms
-- (for 'retry'), @uncounted: true when this attempt must not count toward the event's
-- RELAY_MAX_ATTEMPTS (the relay's configuration was refused with 401/403/404,
-- the circuit breaker was open, or the relay was shutting down); it then
-- raises attempts_base with attempts, so attempts - attempts_base counts only
-- the attempts that say something about the event itself.
--
-- Compare-and-set: a row moves only if it is still at the attempt the relay
-- sent, and either still leased by this relay or rescued to pending and not
-- claimed again since (then a late success still counts and avoids a re-send).
-- A row an operator re-drove since (attempts_base = attempts) is not
-- "rescued": a late result must not undo the re-drive.
-- A row that moved on (re-claimed by another relay, re-driven) is untouched.
--
-- Every attempt is logged in outbox_attempts whether or not the row moved:
-- the attempt happened. If a rescuer already logged it as interrupted, the
-- real outcome replaces that placeholder.
--
-- Returns the ids that moved; the caller counts the others as lost leases.
--
-- Plan (internal/outbox TestHotStatementPlansScaleWithTheBatch): a nested
-- loop over the results with one primary-key probe of outbox per result.
-- The join is on o.id = r.id only: an extra "o.id = ANY (@ids)" let the
-- planner scan outbox by the array and compare every row with every result
-- in a join filter (n² work: 249,500 rows removed for a 500-row batch, 85%
-- of the relay's database time). unnest's row estimate (10 rows, one unnest per array in a SELECT list,
-- which PostgreSQL zips row by row; see sql/README.md) makes the
-- per-result probe the cheapest plan at every batch size, custom or generic.
WITH r AS (
  SELECT unnest(sqlc.arg(ids)::bigint[])                   AS id,
         unnest(sqlc.arg(attempts)::int[])                 AS attempt,
         unnest(sqlc.arg(outcomes)::text[])                AS outcome,
         nullif(unnest(sqlc.arg(http_statuses)::int[]), 0) AS http_status,
         nullif(unnest(sqlc.arg(errors)::text[]), '')      AS error,
         unnest(sqlc.arg(started_ats)::timestamptz[])      AS started_at,
         unnest(sqlc.arg(finished_ats)::timestamptz[])     AS finished_at,
         unnest(sqlc.arg(retry_delays_ms)::bigint[])       AS retry_delay_ms,
         unnest(sqlc.arg(uncounted)::bool[])               AS uncounted
),
moved AS (
  UPDATE outbox AS o
  SET status           = CASE r.outcome WHEN 'retry' THEN 'pending' ELSE r.outcome END,
      delivered_at     = CASE WHEN r.outcome = 'delivered' THEN now() END,
      next_attempt_at  = CASE WHEN r.outcome = 'retry'
                              THEN now() + r.retry_delay_ms * interval '1 millisecond'
                              ELSE o.next_attempt_at END,
      attempts_base    = o.attempts_base + CASE WHEN r.uncounted THEN 1 ELSE 0 END,
      last_error       = r.error,
      last_http_status = r.http_status,
      lease_owner      = NULL,
      claimed_at       = NULL,
      lease_expires_at = NULL
  FROM r
  WHERE o.id = r.id
    AND o.attempts = r.attempt
    AND ((o.status = 'in_flight' AND o.lease_owner = sqlc.arg(relay_id)::text)
         OR (o.status = 'pending' AND o.attempts_base < o.attempts))
  RETURNING o.id, o.status, o.ordering_key
),
-- promoted: when an event with an ordering key is delivered, the next
-- undelivered event of its key, if it is waiting, becomes pending (due
-- now). This statement's snapshot still shows the delivered event in
-- flight, hence "n.id > m.id". A waiting event whose writer committed
-- after this statement's snapshot is promoted by the relay's sweep
-- (promote_waiting.sql). Promoting too early is harmless: the claim
-- re-checks that no earlier event of the key is undelivered.
promoted AS (
  UPDATE outbox AS w
  SET status = 'pending', next_attempt_at = now()
  WHERE w.id = ANY (ARRAY(
          SELECT (SELECT n.id
                  FROM outbox AS n
                  WHERE n.ordering_key = m.ordering_key AND n.id > m.id
                    AND n.status IN ('waiting', 'pending', 'in_flight', 'dead')
                  ORDER BY n.id
                  LIMIT 1)
          FROM moved AS m
          WHERE m.ordering_key IS NOT NULL AND m.status = 'delivered'))
    AND w.status = 'waiting'
),
logged AS (
  INSERT INTO outbox_attempts (outbox_id, attempt, relay_id, started_at, finished_at, http_status, error)
  SELECT r.id, r.attempt, sqlc.arg(relay_id)::text, r.started_at, r.finished_at, r.http_status, r.error
  FROM r
  ON CONFLICT (outbox_id, attempt) DO UPDATE
  SET relay_id    = excluded.relay_id,
      finished_at = excluded.finished_at,
      http_status = excluded.http_status,
      error       = excluded.error
)
SELECT id FROM moved;
