-- name: OtherEventsOfLead :many
-- other_events_of_lead: the outbox ids of lead @lead_id other than
-- @except_id (a lead written twice has two events).
SELECT id FROM outbox WHERE lead_id = sqlc.arg(lead_id)::bigint AND id <> sqlc.arg(except_id) ORDER BY id;
