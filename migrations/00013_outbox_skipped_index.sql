-- +goose NO TRANSACTION
-- +goose Up

-- outbox_skipped: the skipped events (dead heads an operator released with
-- `outbox-relay skip`; rare), so `outbox-relay status` counts them on an
-- index of their own instead of scanning the whole outbox
-- (sql/queries/status_counts.sql). Every other status it counts has one.
--
-- Built CONCURRENTLY (no lock blocking writes to outbox while it builds),
-- so this migration runs outside a transaction. If a concurrent build fails
-- it leaves an INVALID index: DROP INDEX CONCURRENTLY outbox_skipped and run
-- `outbox-relay migrate up` again.
CREATE INDEX CONCURRENTLY IF NOT EXISTS outbox_skipped ON outbox (id) WHERE status = 'skipped';

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS outbox_skipped;
