-- +goose Up

-- The console's events list filtered by Connected User (with or without
-- other filters), newest first with keyset pagination on id: without this
-- index the planner reads the whole outbox for a user with few events among
-- millions of delivered ones (internal/console/explain_test.go). One more
-- B-tree entry per outbox insert; its cost on lead inserts is measured in
-- docs/CONSOLE.md.
--
-- On a large, live outbox build it first without blocking writes, with the
-- same name, then run `outbox-relay migrate up` (IF NOT EXISTS skips it):
--   CREATE INDEX CONCURRENTLY outbox_user_id_id ON outbox (user_id, id);
CREATE INDEX IF NOT EXISTS outbox_user_id_id ON outbox (user_id, id);

-- +goose Down
DROP INDEX outbox_user_id_id;
