-- name: ExtendLeases :many
-- extend_leases: push out the lease of rows relay @relay_id still holds
-- (@ids) to now() + @lease_ms milliseconds, so a live relay's lease never
-- expires under it. Only rows still in_flight under this relay's lease are
-- touched; returns their ids (a row missing from them is no longer this
-- relay's to send).
UPDATE outbox
SET lease_expires_at = now() + sqlc.arg(lease_ms)::bigint * interval '1 millisecond'
WHERE id = ANY(sqlc.arg(ids)::bigint[])
  AND status = 'in_flight'
  AND lease_owner = sqlc.arg(relay_id)::text
RETURNING id;
