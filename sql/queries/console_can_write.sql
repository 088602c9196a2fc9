-- name: ConsoleCanWrite :one
-- console_can_write: whether this connection may re-drive: the privileges
-- a re-drive needs (sql/roles.sql, outbox_operator_write) on a writable
-- primary.
SELECT (NOT pg_is_in_recovery()
   AND has_column_privilege('outbox', 'status', 'UPDATE')
   AND has_column_privilege('outbox', 'attempts_base', 'UPDATE')
   AND has_table_privilege('outbox_redrives', 'INSERT'))::bool AS can_write;
