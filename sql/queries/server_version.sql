-- name: ServerVersion :one
-- server_version: the PostgreSQL version the relay is connected to, as
-- `SHOW server_version` prints it (doctor's database check).
SELECT current_setting('server_version')::text AS server_version;
