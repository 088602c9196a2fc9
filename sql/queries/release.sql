-- name: Release :execrows
-- release: give back rows this relay claimed but never sent (shutdown), without
-- spending their attempt: attempts goes back down by one and the row is due
-- again at once. Compare-and-set on (status, lease owner, attempt).
--
-- @relay_id; @ids the outbox ids and @attempts the attempt number each was
-- claimed at (parallel arrays, one element per row).
UPDATE outbox AS o
SET status           = 'pending',
    attempts         = o.attempts - 1,
    lease_owner      = NULL,
    claimed_at       = NULL,
    lease_expires_at = NULL
FROM (SELECT unnest(sqlc.arg(ids)::bigint[]) AS id, unnest(sqlc.arg(attempts)::int[]) AS attempt) AS r
WHERE o.id = r.id
  AND o.status = 'in_flight'
  AND o.lease_owner = sqlc.arg(relay_id)::text
  AND o.attempts = r.attempt;
