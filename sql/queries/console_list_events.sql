-- name: ConsoleListEvents :many
-- console_list_events: the console's events page: newest first,
-- keyset-paginated on id (@before_id: ids below the last one shown), at
-- most @page_size. Filters, each NULL for "any": @status, @user_id
-- (Connected User), @event_name, @lead_id, @created_from (at or after),
-- @created_before, @error_pattern (ILIKE on last_error; the page allows it
-- only with status dead and @created_from, so it reads
-- outbox_dead_created_at), @ordering_key (the page allows it only with an
-- undelivered status: waiting, pending, in_flight or dead, which
-- outbox_key_undelivered holds). A waiting event always has a key; saying
-- so lets status 'waiting' use outbox_key_undelivered. last_error: its
-- first 200 characters, '' when there is none.
--
-- Plans: the console runs this (and every console_* query) as an unnamed
-- statement (pgx QueryExecModeExec), so PostgreSQL plans it with the
-- parameter values each time: a NULL parameter folds "x IS NULL OR ..." to
-- true and drops the condition, a set one folds to the bare condition,
-- which then matches the partial indexes. A prepared statement's generic
-- plan could not, and would scan the outbox. One statement serves every
-- filter combination; internal/console/explain_test.go EXPLAINs each
-- combination the page offers over many delivered rows: no sequential
-- scan of outbox or outbox_attempts.
--
-- The user and event-name indexes hold settled events only
-- (outbox_user_id_settled, outbox_event_name_settled: status delivered,
-- dead or skipped; migration 00017), so that the relay's insert, claim and
-- record do not write them. The status line below is always true (the
-- outbox_status_valid constraint) but spelled as one OR arm per index
-- predicate: with a user or an event name and no status, PostgreSQL can
-- then OR together (BitmapOr) the settled index, outbox_pending_user
-- (user_id) WHERE status = 'pending', outbox_in_flight_lease WHERE status =
-- 'in_flight' and outbox_waiting WHERE status = 'waiting' (the last two
-- and, for an event name, the pending one read whole: the backlog, not the
-- history), or walk the primary key newest first when that is cheaper. A
-- plain status IN (...) of all six would match no partial index.
SELECT id, event_id::text AS event_id, event_name, user_id, lead_id, ordering_key, status, attempts, created_at,
       delivered_at, last_http_status, coalesce(left(last_error, 200), '')::text AS last_error
FROM outbox
WHERE (sqlc.narg(status)::text IS NULL OR status = sqlc.narg(status)::text)
  AND (sqlc.narg(status)::text IS DISTINCT FROM 'waiting' OR ordering_key IS NOT NULL)
  AND (status IN ('delivered', 'dead', 'skipped') OR status = 'pending' OR status = 'in_flight' OR status = 'waiting')
  AND (sqlc.narg(ordering_key)::text IS NULL OR ordering_key = sqlc.narg(ordering_key)::text)
  AND (sqlc.narg(user_id)::text IS NULL OR user_id = sqlc.narg(user_id)::text)
  AND (sqlc.narg(event_name)::text IS NULL OR event_name = sqlc.narg(event_name)::text)
  AND (sqlc.narg(lead_id)::bigint IS NULL OR lead_id = sqlc.narg(lead_id)::bigint)
  AND (sqlc.narg(created_from)::timestamptz IS NULL OR created_at >= sqlc.narg(created_from)::timestamptz)
  AND (sqlc.narg(created_before)::timestamptz IS NULL OR created_at < sqlc.narg(created_before)::timestamptz)
  AND (sqlc.narg(error_pattern)::text IS NULL OR last_error ILIKE sqlc.narg(error_pattern)::text)
  AND (sqlc.narg(before_id)::bigint IS NULL OR id < sqlc.narg(before_id)::bigint)
ORDER BY id DESC
LIMIT sqlc.arg(page_size)::int;
