-- name: SchemaVersionTable :one
-- schema_version_table: whether goose's version table exists in the search
-- path (it does not on a database never migrated).
SELECT (to_regclass('goose_db_version') IS NOT NULL)::boolean AS exists;
