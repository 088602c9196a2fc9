-- name: EventByEventID :one
-- event_by_event_id: the outbox row with this event id (the payload's
-- eventId, a uuid), by index outbox_event_id_key (see event_by_id.sql).
SELECT * FROM outbox WHERE event_id = sqlc.arg(event_id)::uuid;
