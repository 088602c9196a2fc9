-- name: PendingBehindMark :one
-- pending_behind_mark: the next_attempt_at (timestamptz; no row when none) of
-- the oldest due pending row behind the low-water mark @low_water: a row the
-- claims, which look only at rows due at or after the mark, would never
-- take (sql/queries/claim.sql, "Low-water mark", lists how one gets there:
-- a transaction that began before the mark and committed after it, a claim
-- of another relay that rolled back, ...). The relay's re-check runs it in
-- the background (outbox.Store.RecheckMark) and lowers the mark to what it
-- returns, so that the next claim takes that row.
--
-- Cost: one descent of outbox_pending_due (read from the front), plus one heap fetch per dead entry in front of the first
-- live one. While a long transaction holds the xmin horizon those dead
-- entries pile up and this grows with them; it runs on its own connection,
-- never in the claim loop, and is paced (backoff.Paced): a run that takes d
-- waits at least 50 × d before the next.
SELECT next_attempt_at
FROM outbox
WHERE status = 'pending'
  AND next_attempt_at < sqlc.arg(low_water)::timestamptz
  AND next_attempt_at <= now()
ORDER BY next_attempt_at
LIMIT 1;
