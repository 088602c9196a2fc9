-- name: RescueExpired :many
-- rescue_expired: make up to @max_rows rows whose lease expired claimable again (their
-- relay died or lost the database), and log the interrupted attempt.
--
-- Compare-and-set: the rows are locked (SKIP LOCKED, so a relay completing one
-- right now is not waited on); locking re-checks status and expiry on the
-- newest row version (EvalPlanQual), so a row completed meanwhile is neither
-- locked nor reset, and no one else can change a locked row before this
-- statement ends. The UPDATE re-checks anyway. The lease owner and claim time
-- are read from the locked row, not from an earlier read: the SET list reads
-- the row's values before the update, and the interrupted attempt is logged
-- from the locked rows.
--
-- Plan (internal/outbox TestHotStatementPlansScaleWithTheBatch): the UPDATE
-- finds the locked ids through the primary key (an array, as in claim);
-- joining the CTE let the planner compare every expired row with every
-- locked one (n²: 249,500 rows removed by join filter for 500).
-- A row that has used @max_attempts or more since its last re-drive goes dead instead: an event
-- that kills every relay that sends it must not loop forever.
WITH expired AS MATERIALIZED (
  SELECT id, lease_owner, claimed_at, attempts
  FROM outbox
  WHERE status = 'in_flight' AND lease_expires_at < now()
  ORDER BY lease_expires_at
  LIMIT sqlc.arg(max_rows)::int
  FOR UPDATE SKIP LOCKED
),
reset AS (
  UPDATE outbox AS o
  SET status           = CASE WHEN o.attempts - o.attempts_base >= sqlc.arg(max_attempts)::int THEN 'dead' ELSE 'pending' END,
      next_attempt_at  = now(),
      last_error       = CASE WHEN o.attempts - o.attempts_base >= sqlc.arg(max_attempts)::int
                              THEN format('gave up after %s attempt%s: last attempt interrupted, lease of relay %s expired',
                                          o.attempts, CASE WHEN o.attempts = 1 THEN '' ELSE 's' END, o.lease_owner)
                              ELSE format('attempt %s interrupted: lease of relay %s expired before it reported an outcome', o.attempts, o.lease_owner) END,
      last_http_status = NULL,
      lease_owner      = NULL,
      claimed_at       = NULL,
      lease_expires_at = NULL
  WHERE o.id = ANY (ARRAY(SELECT id FROM expired))
    AND o.status = 'in_flight' AND o.lease_expires_at < now()
  RETURNING o.id
),
logged AS (
  INSERT INTO outbox_attempts (outbox_id, attempt, relay_id, started_at, finished_at, http_status, error)
  SELECT id, attempts, lease_owner, claimed_at, NULL, NULL, 'interrupted: lease expired before the relay reported an outcome'
  FROM expired
  ON CONFLICT (outbox_id, attempt) DO NOTHING
)
SELECT id FROM reset;
