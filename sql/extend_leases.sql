-- extend_leases: push out the lease of rows relay $1 still holds ($2 ids) to
-- now() + $3 milliseconds, so a live relay's lease never expires under it.
-- Only rows still in_flight under this relay's lease are touched; returns
-- their ids (a row missing from them is no longer this relay's to send).
UPDATE outbox
SET lease_expires_at = now() + $3::bigint * interval '1 millisecond'
WHERE id = ANY($2::bigint[])
  AND status = 'in_flight'
  AND lease_owner = $1
RETURNING id
