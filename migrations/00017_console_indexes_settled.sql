-- +goose NO TRANSACTION
-- +goose Up

-- The console's user and event-name indexes (migration 00012) on settled
-- events only: delivered, dead and skipped, the statuses an event ends in.
--
-- outbox_user_id and outbox_event_name held every row version, so every
-- event wrote an entry in both three times on the relay's hot path: the
-- lead insert (pending), the claim (pending -> in_flight: a non-HOT update,
-- status is in the partial indexes' predicates) and the record (in_flight
-- -> delivered): ~395 bytes of WAL per delivered event (docs/BENCHMARKS.md).
-- The partial ones below get one entry per event, when it settles, and
-- none from the insert or the claim (docs/CONSOLE.md has the measured WAL).
--
-- Unsettled events (waiting, pending, in_flight: a backlog, not history)
-- are found by the events list through the indexes the relay already has:
-- outbox_pending_user (user_id, ...) WHERE status = 'pending',
-- outbox_in_flight_lease WHERE status = 'in_flight' and outbox_waiting
-- WHERE status = 'waiting'; sql/queries/console_list_events.sql names one
-- OR arm per status set so that PostgreSQL combines them (BitmapOr).
--
-- Built CONCURRENTLY (no lock blocking writes to outbox while they build),
-- so this migration runs outside a transaction, one statement at a time;
-- the new indexes are built before the old ones are dropped, so the console
-- never lacks one. If a concurrent build fails it leaves an INVALID index:
-- DROP INDEX CONCURRENTLY it and run `outbox-relay migrate up` again.
CREATE INDEX CONCURRENTLY IF NOT EXISTS outbox_user_id_settled ON outbox (user_id)
  WHERE status IN ('delivered', 'dead', 'skipped');
CREATE INDEX CONCURRENTLY IF NOT EXISTS outbox_event_name_settled ON outbox (event_name)
  WHERE status IN ('delivered', 'dead', 'skipped');
DROP INDEX CONCURRENTLY IF EXISTS outbox_user_id;
DROP INDEX CONCURRENTLY IF EXISTS outbox_event_name;

-- +goose Down
CREATE INDEX CONCURRENTLY IF NOT EXISTS outbox_user_id ON outbox (user_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS outbox_event_name ON outbox (event_name);
DROP INDEX CONCURRENTLY IF EXISTS outbox_event_name_settled;
DROP INDEX CONCURRENTLY IF EXISTS outbox_user_id_settled;
