-- Queries of `outbox-relay console` (internal/console). sqlc-style names
-- (internal/namedsql) until sqlc lands (issue 8).
--
-- Plans: the console runs every statement as an unnamed statement (pgx
-- QueryExecModeExec), so PostgreSQL always plans it with the parameter
-- values: a NULL parameter folds "$n IS NULL OR ..." to true and drops the
-- condition, a set one folds to the bare condition, which then matches the
-- partial indexes. One statement serves every filter combination, and
-- console_test.go EXPLAINs each combination the pages offer against a table
-- of many delivered rows: no sequential scan of outbox or outbox_attempts.

-- name: Overview :one
-- Counts by status from the partial indexes, one subquery per status
-- (waiting: behind an earlier event of its ordering key, counted through
-- outbox_key_undelivered; skipped: dead events an operator released, through
-- outbox_skipped, migration 00013) (see
-- sql/gauges.sql: `status IN (...)` matches no partial index). Delivered
-- rows are counted up to $1 through outbox_delivered_at; past that the page
-- says "more than". Oldest undelivered: pending or in-flight. Latency of the
-- last $2 (interval) of deliveries: delivered_at - created_at, where
-- created_at is the start of the transaction that wrote the lead.
SELECT now()::timestamptz AS now,
  (SELECT count(*) FROM outbox WHERE status = 'waiting' AND ordering_key IS NOT NULL) AS waiting,
  (SELECT count(*) FROM outbox WHERE status = 'pending')   AS pending,
  (SELECT count(*) FROM outbox WHERE status = 'in_flight') AS in_flight,
  (SELECT count(*) FROM outbox WHERE status = 'dead')      AS dead,
  (SELECT count(*) FROM outbox WHERE status = 'skipped')   AS skipped,
  (SELECT count(*) FROM (SELECT 1 FROM outbox WHERE status = 'delivered' AND delivered_at IS NOT NULL
                         ORDER BY delivered_at DESC LIMIT $1) AS d) AS delivered_capped,
  coalesce(extract(epoch FROM now() - least(
     (SELECT min(created_at) FROM outbox WHERE status = 'pending'),
     (SELECT min(created_at) FROM outbox WHERE status = 'in_flight')))::float8, 0) AS oldest_undelivered_seconds,
  (SELECT min(id) FROM outbox WHERE status = 'pending'
     AND created_at = (SELECT min(created_at) FROM outbox WHERE status = 'pending')) AS oldest_pending_id,
  l.delivered AS latency_count,
  l.p[1] AS p50_seconds, l.p[2] AS p90_seconds, l.p[3] AS p99_seconds, l.max_seconds
FROM (
  SELECT count(*) AS delivered,
         percentile_cont(ARRAY[0.5, 0.9, 0.99]::float8[]) WITHIN GROUP (ORDER BY extract(epoch FROM delivered_at - created_at)::float8) AS p,
         max(extract(epoch FROM delivered_at - created_at)::float8) AS max_seconds
  FROM outbox
  WHERE status = 'delivered' AND delivered_at >= now() - $2::interval
) AS l;

-- name: PerMinute :many
-- Deliveries (outbox_delivered_at) and failed attempts
-- (outbox_attempts_failed_started_at) per minute over the last $1 minutes,
-- oldest first, the current minute last and partial; empty minutes are 0.
WITH minutes AS (
  SELECT generate_series(date_trunc('minute', now()) - ($1::int - 1) * interval '1 minute',
                         date_trunc('minute', now()), interval '1 minute') AS minute
),
d AS (
  SELECT date_trunc('minute', delivered_at) AS minute, count(*) AS n
  FROM outbox
  WHERE status = 'delivered' AND delivered_at >= date_trunc('minute', now()) - ($1::int - 1) * interval '1 minute'
  GROUP BY 1
),
f AS (
  SELECT date_trunc('minute', started_at) AS minute, count(*) AS n
  FROM outbox_attempts
  WHERE error IS NOT NULL AND started_at >= date_trunc('minute', now()) - ($1::int - 1) * interval '1 minute'
  GROUP BY 1
)
SELECT m.minute, coalesce(d.n, 0) AS delivered, coalesce(f.n, 0) AS failed
FROM minutes AS m
LEFT JOIN d ON d.minute = m.minute
LEFT JOIN f ON f.minute = m.minute
ORDER BY m.minute;

-- name: BacklogByUser :many
-- Pending, in-flight and dead events per Connected User, biggest backlog
-- first, at most $1 users. Each branch reads one status's partial index;
-- delivered rows are never read.
SELECT user_id,
       sum(pending)::bigint   AS pending,
       sum(in_flight)::bigint AS in_flight,
       sum(dead)::bigint      AS dead,
       min(oldest)            AS oldest_undelivered
FROM (
  SELECT user_id, count(*) AS pending, 0 AS in_flight, 0 AS dead, min(created_at) AS oldest
  FROM outbox WHERE status = 'pending' GROUP BY user_id
  UNION ALL
  SELECT user_id, 0, count(*), 0, min(created_at)
  FROM outbox WHERE status = 'in_flight' GROUP BY user_id
  UNION ALL
  SELECT user_id, 0, 0, count(*), NULL
  FROM outbox WHERE status = 'dead' GROUP BY user_id
) AS s
GROUP BY user_id
ORDER BY sum(pending) + sum(in_flight) DESC, sum(dead) DESC, user_id
LIMIT $1;

-- name: TopErrors :many
-- Failed attempts of the last $1 (interval) by error text, most attempts
-- first, at most $2; from outbox_attempts_failed_started_at.
SELECT left(error, 300)            AS error,
       count(*)                    AS attempts,
       count(DISTINCT outbox_id)   AS events,
       max(started_at)             AS last_at
FROM outbox_attempts
WHERE error IS NOT NULL AND started_at >= now() - $1::interval
GROUP BY 1
ORDER BY 2 DESC, 1
LIMIT $2;

-- name: Relays :many
-- Relay heartbeats (migration 00006): running ones first, newest first.
SELECT relay_id, version, host, started_at, last_seen_at, stopped_at, breaker_state, in_flight,
       extract(epoch FROM now() - last_seen_at)::float8 AS seen_seconds_ago
FROM outbox_relays
ORDER BY stopped_at IS NOT NULL, last_seen_at DESC
LIMIT 50;

-- name: ListEvents :many
-- The events page: newest first, keyset-paginated on id ($8: ids below the
-- last one shown). Filters, each NULL for "any": $1 status, $2 Connected
-- User, $3 event name, $4 lead id, $5 created at or after, $6 created
-- before, $7 ILIKE pattern on last_error (the page allows it only with
-- status dead and $5, so it reads outbox_dead_created_at), $10 ordering key
-- (the page allows it only with an undelivered status: waiting, pending,
-- in_flight or dead, which outbox_key_undelivered holds). $9 page size.
-- A waiting event always has a key; saying so lets status 'waiting' use
-- outbox_key_undelivered.
SELECT id, event_id::text AS event_id, event_name, user_id, lead_id, ordering_key, status, attempts, created_at,
       delivered_at, last_http_status, left(last_error, 200) AS last_error
FROM outbox
WHERE ($1::text IS NULL OR status = $1::text)
  AND ($1::text IS DISTINCT FROM 'waiting' OR ordering_key IS NOT NULL)
  AND ($10::text IS NULL OR ordering_key = $10::text)
  AND ($2::text IS NULL OR user_id = $2::text)
  AND ($3::text IS NULL OR event_name = $3::text)
  AND ($4::bigint IS NULL OR lead_id = $4::bigint)
  AND ($5::timestamptz IS NULL OR created_at >= $5::timestamptz)
  AND ($6::timestamptz IS NULL OR created_at < $6::timestamptz)
  AND ($7::text IS NULL OR last_error ILIKE $7::text)
  AND ($8::bigint IS NULL OR id < $8::bigint)
ORDER BY id DESC
LIMIT $9;

-- name: GetEvent :one
-- One event; the payload pretty-printed by PostgreSQL unless $2 (hide).
SELECT id, event_id::text AS event_id, event_name, user_id, lead_id, ordering_key, status, attempts, attempts_base,
       created_at, next_attempt_at, delivered_at, last_http_status, last_error, lease_owner, lease_expires_at,
       CASE WHEN $2::bool THEN NULL ELSE jsonb_pretty(payload) END AS payload
FROM outbox
WHERE id = $1;

-- name: EventAttempts :many
-- Every attempt of one event, oldest first (primary key).
SELECT attempt, relay_id, started_at, finished_at, http_status, error,
       extract(epoch FROM finished_at - started_at)::float8 AS seconds
FROM outbox_attempts
WHERE outbox_id = $1
ORDER BY attempt;

-- name: EventRedrives :many
-- Every re-drive (or skip) of one event, oldest first (outbox_redrives_outbox_id).
SELECT redriven_at, redriven_by, action, coalesce(reason, '') AS reason, previous_status, previous_attempts,
       previous_last_error, previous_last_http_status
FROM outbox_redrives
WHERE outbox_id = $1
ORDER BY redriven_at, id;

-- name: BlockedKeys :many
-- Ordering keys held back by a dead event: the dead event is the key's
-- head (no earlier undelivered event of the key) and events of the key wait
-- behind it. Dead rows are few (outbox_dead); each key is probed through
-- outbox_key_undelivered. blocked_seconds counts from the dead event's last
-- attempt. At most $1 keys, most waiting first.
SELECT d.ordering_key AS key, d.user_id, d.id AS head_id,
       w.waiting,
       extract(epoch FROM now() - coalesce(
         (SELECT max(coalesce(a.finished_at, a.started_at)) FROM outbox_attempts AS a WHERE a.outbox_id = d.id),
         d.created_at))::float8 AS blocked_seconds
FROM outbox AS d
CROSS JOIN LATERAL (
  SELECT count(*) AS waiting FROM outbox AS e
  WHERE e.ordering_key = d.ordering_key AND e.status = 'waiting' AND e.ordering_key IS NOT NULL
) AS w
WHERE d.status = 'dead' AND d.ordering_key IS NOT NULL
  AND w.waiting > 0
  AND NOT EXISTS (
    SELECT 1 FROM outbox AS e
    WHERE e.ordering_key = d.ordering_key AND e.id < d.id AND e.ordering_key IS NOT NULL
      AND e.status IN ('waiting', 'pending', 'in_flight', 'dead'))
ORDER BY w.waiting DESC, d.id
LIMIT $1;

-- name: CanWrite :one
-- Whether this connection may re-drive: the privileges a re-drive needs
-- (sql/roles.sql, outbox_operator_write) on a writable primary.
SELECT NOT pg_is_in_recovery()
   AND has_column_privilege('outbox', 'status', 'UPDATE')
   AND has_column_privilege('outbox', 'attempts_base', 'UPDATE')
   AND has_table_privilege('outbox_redrives', 'INSERT') AS can_write;
