-- name: DeadTuples :many
-- dead_tuples: dead row versions of the outbox tables, from the statistics
-- collector (approximate and a little late), for `status`.
SELECT relname::text AS relname, n_dead_tup::bigint AS n_dead_tup
FROM pg_catalog.pg_stat_user_tables
WHERE relid IN ('outbox'::regclass, 'outbox_attempts'::regclass);
