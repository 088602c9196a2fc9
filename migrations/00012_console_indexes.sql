-- +goose Up

-- Indexes for the console's events list (internal/console, ListEvents):
-- newest first with keyset pagination on id, filtered by Connected User,
-- event name and a created_at range. Without them, a filter that matches
-- few of millions of delivered rows makes the planner read the whole outbox
-- (internal/console/explain_test.go EXPLAINs every combination). Their cost
-- on lead inserts and attempt records is measured in docs/CONSOLE.md.
--
--   outbox_user_id        B-tree on user_id alone: the equal keys of a user
--                         share posting lists (deduplication), so it costs
--                         a few bytes per event; a user with few events is
--                         read through it (bitmap, then the newest 50), a
--                         user with many by walking the primary key.
--   outbox_event_name     B-tree on event_name alone, likewise: a rare name
--                         through it, a common one by the primary key.
--                         Both replaced by migration 00017 with partial
--                         indexes on settled events (outbox_user_id_settled,
--                         outbox_event_name_settled: delivered, dead,
--                         skipped): these two took an entry for every row
--                         version, so the lead insert, the relay's claim and
--                         its record each wrote both on the relay's hot path.
--   outbox_created_at_brin BRIN: created_at follows insertion order, so a
--                         block-range summary (a few pages for millions of
--                         rows) bounds a time range; inserts only widen the
--                         last range's summary.
--
-- On a large, live outbox build them first without blocking writes, with
-- the same names, then run `outbox-relay migrate up` (IF NOT EXISTS skips them):
--   CREATE INDEX CONCURRENTLY outbox_user_id ON outbox (user_id);
--   CREATE INDEX CONCURRENTLY outbox_event_name ON outbox (event_name);
--   CREATE INDEX CONCURRENTLY outbox_created_at_brin ON outbox USING brin (created_at);
CREATE INDEX IF NOT EXISTS outbox_user_id ON outbox (user_id);
CREATE INDEX IF NOT EXISTS outbox_event_name ON outbox (event_name);
CREATE INDEX IF NOT EXISTS outbox_created_at_brin ON outbox USING brin (created_at);

-- +goose Down
DROP INDEX outbox_created_at_brin;
DROP INDEX outbox_event_name;
DROP INDEX outbox_user_id;
