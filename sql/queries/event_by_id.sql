-- name: EventByID :one
-- event_by_id: one outbox row, every column, by primary key.
--
-- Inspect reads an event by each kind of reference with its own statement
-- (event_by_id, event_by_lead_id, event_by_event_id) rather than one with ORs,
-- so each is a plain index lookup (primary key, outbox_lead_id,
-- outbox_event_id_key) whatever plan a prepared statement gets.
SELECT * FROM outbox WHERE id = sqlc.arg(id);
