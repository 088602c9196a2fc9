-- rescue_expired: make up to $1 rows whose lease expired claimable again (their
-- relay died or lost the database), and log the interrupted attempt.
--
-- Compare-and-set: the rows are locked (SKIP LOCKED, so a relay completing one
-- right now is not waited on) and the UPDATE re-checks status and expiry on
-- the locked row; a row completed meanwhile is not reset. The lease owner and
-- claim time are read from the locked row, not from an earlier read.
-- A row that has used $2 (max attempts) or more since its last re-drive goes dead instead: an event
-- that kills every relay that sends it must not loop forever.
WITH expired AS MATERIALIZED (
  SELECT id, lease_owner, claimed_at, attempts
  FROM outbox
  WHERE status = 'in_flight' AND lease_expires_at < now()
  ORDER BY lease_expires_at
  LIMIT $1
  FOR UPDATE SKIP LOCKED
),
reset AS (
  UPDATE outbox AS o
  SET status           = CASE WHEN o.attempts - o.attempts_base >= $2 THEN 'dead' ELSE 'pending' END,
      next_attempt_at  = now(),
      last_error       = CASE WHEN o.attempts - o.attempts_base >= $2
                              THEN format('gave up after %s attempts: last attempt interrupted, lease of relay %s expired', o.attempts, e.lease_owner)
                              ELSE format('attempt %s interrupted: lease of relay %s expired before it reported an outcome', o.attempts, e.lease_owner) END,
      last_http_status = NULL,
      lease_owner      = NULL,
      claimed_at       = NULL,
      lease_expires_at = NULL
  FROM expired AS e
  WHERE o.id = e.id AND o.status = 'in_flight' AND o.lease_expires_at < now()
  RETURNING o.id, o.attempts, e.lease_owner, e.claimed_at
),
logged AS (
  INSERT INTO outbox_attempts (outbox_id, attempt, relay_id, started_at, finished_at, http_status, error)
  SELECT id, attempts, lease_owner, claimed_at, NULL, NULL, 'interrupted: lease expired before the relay reported an outcome'
  FROM reset
  ON CONFLICT (outbox_id, attempt) DO NOTHING
)
SELECT id FROM reset
