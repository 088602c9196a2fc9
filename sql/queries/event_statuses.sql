-- name: EventStatuses :many
-- event_statuses: the status of each outbox row among @ids that exists
-- (primary key probes), by id; retry uses it to say why an id it was given
-- did not move.
SELECT id, status
FROM outbox
WHERE id = ANY (sqlc.arg(ids)::bigint[])
ORDER BY id;
