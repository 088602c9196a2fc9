-- name: SchemaVersions :many
-- schema_versions: each migration version goose has recorded and whether its
-- latest record says applied. It only reads goose's table (declared for sqlc
-- in sql/schema/goose.sql), so a role without CREATE (the relay's) can run
-- it; the caller checks that the table exists first (schema_version_table).
SELECT DISTINCT ON (version_id) version_id, is_applied
FROM goose_db_version
ORDER BY version_id, id DESC;
