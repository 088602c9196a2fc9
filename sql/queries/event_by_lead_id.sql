-- name: EventByLeadID :one
-- event_by_lead_id: the outbox row of a lead, by index outbox_lead_id (see
-- event_by_id.sql). A lead normally has exactly one event (one trigger row
-- per insert); should it have several, the newest is taken.
SELECT * FROM outbox WHERE lead_id = sqlc.arg(lead_id)::bigint ORDER BY id DESC LIMIT 1;
