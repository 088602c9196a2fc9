-- name: RedriveDryRun :many
-- redrive_dry_run: list what redrive.sql would move now, changing and
-- locking nothing. The WHERE is redrive.sql's filter; keep them equal.
SELECT o.id, o.user_id, o.attempts AS previous_attempts, o.last_error AS previous_last_error, o.last_http_status AS previous_last_http_status
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
ORDER BY o.id;
