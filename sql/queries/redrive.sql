-- name: Redrive :many
-- redrive: move the matching dead events to pending, due now, in one
-- statement, and record each move in outbox_redrives (@redriven_by who,
-- @reason why, NULL allowed).
--
-- The filter (the WHERE of target) is the same as redrive_dry_run.sql's; keep
-- them equal. @ids (NULL = any), @user_id (NULL = any), @error_pattern, an
-- ILIKE pattern (NULL = any), @dead_since: died at or after, @event_name,
-- @lead_id, @created_from: written at or after, @created_before: written
-- before (each NULL = any).
-- NULL parameters switch a condition off, so one statement serves every
-- combination. @force also takes the skipped events among @ids (an
-- operator released their key with skip; re-sending one is out of order, so
-- each is recorded with forced = true). The scan is of dead rows only (partial index outbox_dead; dead
-- rows are few, so even the generic plan of a prepared statement is cheap).
--
-- * target locks the matching rows (FOR UPDATE, in id order so concurrent
--   re-drives cannot deadlock). A row changed meanwhile is re-checked on
--   its newest version (READ COMMITTED EvalPlanQual) and dropped if it is
--   no longer dead, so the old values read here are the locked row's.
-- * moved is the compare-and-set: it changes a row only while it is still
--   in the state target read (dead, or skipped when @force names it).
--   attempts is left alone (attempt numbers keep rising, outbox_attempts
--   is never rewritten); attempts_base = attempts restarts the relay's
--   RELAY_MAX_ATTEMPTS count. last_error/last_http_status describe the
--   latest attempt, so they are cleared; the old values go to
--   outbox_redrives.
-- * logged inserts the history rows; data-modifying CTEs always run.
WITH target AS MATERIALIZED (
  SELECT o.id, o.user_id, o.attempts, o.last_error, o.last_http_status, o.status
  FROM outbox AS o
  WHERE (o.status = 'dead' OR (o.status = 'skipped' AND sqlc.arg(force)::bool AND sqlc.narg(ids)::bigint[] IS NOT NULL AND o.id = ANY(sqlc.narg(ids)::bigint[])))
    AND (sqlc.narg(ids)::bigint[] IS NULL OR o.id = ANY(sqlc.narg(ids)::bigint[]))
    AND (sqlc.narg(user_id)::text IS NULL OR o.user_id = sqlc.narg(user_id)::text)
    AND (sqlc.narg(error_pattern)::text IS NULL OR o.last_error ILIKE sqlc.narg(error_pattern)::text)
    AND (sqlc.narg(dead_since)::timestamptz IS NULL OR
         coalesce((SELECT max(coalesce(a.finished_at, a.started_at))
                   FROM outbox_attempts AS a
                   WHERE a.outbox_id = o.id), o.created_at) >= sqlc.narg(dead_since)::timestamptz)
    AND (sqlc.narg(event_name)::text IS NULL OR o.event_name = sqlc.narg(event_name)::text)
    AND (sqlc.narg(lead_id)::bigint IS NULL OR o.lead_id = sqlc.narg(lead_id)::bigint)
    AND (sqlc.narg(created_from)::timestamptz IS NULL OR o.created_at >= sqlc.narg(created_from)::timestamptz)
    AND (sqlc.narg(created_before)::timestamptz IS NULL OR o.created_at < sqlc.narg(created_before)::timestamptz)
  ORDER BY o.id
  FOR UPDATE OF o
),
moved AS (
  UPDATE outbox AS o
  SET status           = 'pending',
      next_attempt_at  = now(),
      attempts_base    = o.attempts,
      last_error       = NULL,
      last_http_status = NULL
  FROM target AS t
  WHERE o.id = t.id AND o.status = t.status
  RETURNING o.id, t.user_id, t.attempts, t.last_error, t.last_http_status, t.status
),
logged AS (
  INSERT INTO outbox_redrives (outbox_id, redriven_by, reason, previous_status,
                               previous_attempts, previous_last_error, previous_last_http_status, forced)
  SELECT id, sqlc.arg(redriven_by)::text, sqlc.narg(reason)::text, status, attempts, last_error, last_http_status, status = 'skipped'
  FROM moved
)
SELECT id, user_id, attempts AS previous_attempts, last_error AS previous_last_error, last_http_status AS previous_last_http_status
FROM moved
ORDER BY id;
