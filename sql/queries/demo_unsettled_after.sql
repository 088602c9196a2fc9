-- name: DemoUnsettledAfter :one
-- demo_unsettled_after: how many outbox rows with an id above @after_id are
-- still waiting (pending or in flight). One branch per status, so the
-- partial indexes on pending and in-flight rows serve the demo's polling
-- however many rows are delivered.
SELECT ((SELECT count(*) FROM outbox AS p WHERE p.status = 'pending' AND p.id > sqlc.arg(after_id)::bigint)
     + (SELECT count(*) FROM outbox AS f WHERE f.status = 'in_flight' AND f.id > sqlc.arg(after_id)::bigint))::bigint AS unsettled;
