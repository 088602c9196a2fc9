-- name: DemoEventsAfter :one
-- demo_events_after: outbox rows with an id above @after_id (primary-key
-- range), and how many of them are still waiting (pending or in flight),
-- delivered and dead, with the attempts they took.
SELECT count(*) AS total,
       count(*) FILTER (WHERE status IN ('pending', 'in_flight')) AS unsettled,
       count(*) FILTER (WHERE status = 'delivered') AS delivered,
       count(*) FILTER (WHERE status = 'dead') AS dead,
       coalesce(sum(attempts), 0)::bigint AS attempts
FROM outbox
WHERE id > sqlc.arg(after_id);
