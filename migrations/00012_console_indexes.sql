-- +goose Up

-- Indexes for the console's events list (internal/console, ListEvents):
-- newest first with keyset pagination on id, filtered by Connected User,
-- event name and a created_at range. Without them, a filter that matches
-- few of millions of delivered rows makes the planner read the whole outbox
-- (internal/console/explain_test.go EXPLAINs every combination). Their cost
-- on lead inserts and attempt records is measured in docs/CONSOLE.md.
--
--   outbox_user_id_id     B-tree: one entry per event, the user's events by id.
--   outbox_event_name_id  B-tree: event names are few, so deduplication keeps
--                         it small.
--   outbox_created_at_brin BRIN: created_at follows insertion order, so a
--                         block-range summary (a few pages for millions of
--                         rows) bounds a time range; inserts only widen the
--                         last range's summary.
--
-- On a large, live outbox build them first without blocking writes, with
-- the same names, then run `outbox-relay migrate up` (IF NOT EXISTS skips them):
--   CREATE INDEX CONCURRENTLY outbox_user_id_id ON outbox (user_id, id);
--   CREATE INDEX CONCURRENTLY outbox_event_name_id ON outbox (event_name, id);
--   CREATE INDEX CONCURRENTLY outbox_created_at_brin ON outbox USING brin (created_at);
CREATE INDEX IF NOT EXISTS outbox_user_id_id ON outbox (user_id, id);
CREATE INDEX IF NOT EXISTS outbox_event_name_id ON outbox (event_name, id);
CREATE INDEX IF NOT EXISTS outbox_created_at_brin ON outbox USING brin (created_at);

-- +goose Down
DROP INDEX outbox_created_at_brin;
DROP INDEX outbox_event_name_id;
DROP INDEX outbox_user_id_id;
