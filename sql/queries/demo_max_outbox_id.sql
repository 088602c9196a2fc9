-- name: DemoMaxOutboxID :one
-- demo_max_outbox_id: the highest outbox id before the demo loads its leads
-- (0 for an empty outbox), so the demo counts only its own events.
SELECT coalesce(max(id), 0)::bigint AS max_id FROM outbox;
