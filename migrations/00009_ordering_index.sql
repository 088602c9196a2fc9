-- +goose NO TRANSACTION
-- +goose Up

-- outbox_key_undelivered: the undelivered events of each ordering key, in
-- id (= commit) order. It answers "is there an earlier undelivered event
-- of this key?" in one descent (claim, the status of a new keyed event),
-- "which event comes next?" (record_results' promotion) and walks the
-- blocked keys (sql/operator/blocked_keys.sql, status, the relay's
-- promotion sweep). Unkeyed events have no entry in it, and delivered or
-- skipped ones leave it.
--
-- Built CONCURRENTLY (no lock blocking writes to outbox, hence lead
-- inserts, while it builds), so this migration runs outside a transaction.
-- If a concurrent build fails it leaves an INVALID index: DROP INDEX
-- CONCURRENTLY outbox_key_undelivered and run `outbox-relay migrate up` again.
CREATE INDEX CONCURRENTLY IF NOT EXISTS outbox_key_undelivered ON outbox (ordering_key, id)
  WHERE ordering_key IS NOT NULL AND status IN ('waiting', 'pending', 'in_flight', 'dead');

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS outbox_key_undelivered;
