-- release: give back rows this relay claimed but never sent (shutdown), without
-- spending their attempt: attempts goes back down by one and the row is due
-- again at once. Compare-and-set on (status, lease owner, attempt).
--
-- $1 relay id, $2 outbox ids, $3 the attempt number each was claimed at.
UPDATE outbox AS o
SET status           = 'pending',
    attempts         = o.attempts - 1,
    lease_owner      = NULL,
    claimed_at       = NULL,
    lease_expires_at = NULL
FROM unnest($2::bigint[], $3::int[]) AS r(id, attempt)
WHERE o.id = r.id
  AND o.status = 'in_flight'
  AND o.lease_owner = $1
  AND o.attempts = r.attempt
