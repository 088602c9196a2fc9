-- name: Claim :many
-- claim: take up to @max_rows due pending rows for relay @relay_id, mark them in_flight with
-- a lease of @lease_ms milliseconds and count the attempt, in one statement, fairly
-- across Connected Users.
--
-- @user_cursor user cursor (round-robin position: only users after it are visited in
-- the fair pass; the empty string starts from the first), @max_users most users visited per claim,
-- @per_user most rows per user in the fair pass.
-- @low_water low-water mark (timestamptz, NULL = none): only pending rows with
-- next_attempt_at >= @low_water are looked at. See "Low-water mark" below.
--
-- Fairness: one customer importing 100,000 leads must not starve the others.
-- The fair pass visits up to @max_users users with due events (in user_id order,
-- after the cursor) and takes up to @per_user of each one's oldest due events; the
-- fill pass tops the batch up with the oldest due events of anyone. A big
-- backlog still drains at full batch size, and every other user with due
-- events gets a share of each claim until the round-robin reaches it.
--
-- Why this shape:
-- * backlog counts the due rows, up to @max_rows + 1 (a range scan of
--   outbox_pending_due). When they fit in one batch the fill pass takes
--   them all and the fair pass has nothing to share out, so it is skipped:
--   the steady state (the relay keeping up) never runs the skip scan below,
--   whose cost grows with the dead entries each user's pending range holds
--   while a long transaction holds the xmin horizon (see "Low-water mark").
-- * users is a recursive skip scan over outbox_pending_user: one index
--   descent per user, however many events each has.
-- * The CTEs are MATERIALIZED so each locking subquery runs exactly once.
--   Written as "UPDATE ... WHERE id IN (SELECT ... LIMIT n FOR UPDATE SKIP
--   LOCKED)" the planner may re-run the subquery and claim more than n rows.
-- * FOR UPDATE SKIP LOCKED lets several relays claim concurrently without
--   waiting on each other; rows another relay is claiming are skipped. After
--   the lock, PostgreSQL re-checks the WHERE clause on the newest row version
--   (EvalPlanQual, READ COMMITTED), so a row claimed meanwhile is not taken.
--   Our own fair rows are locked by us, not skipped, so fill excludes them.
-- * The claim changes state (in_flight, lease, attempts + 1) and commits at
--   once: no transaction stays open across the HTTP call.
-- * The locked ids become an array (an InitPlan, run once) and the UPDATE
--   finds them through the primary key. Joining the CTE instead let the
--   planner pick a hash join over a sequential scan of the whole outbox
--   (EXPLAIN ANALYZE: 34 ms for 500 rows at 10k rows, growing with the table;
--   16 ms by primary key).
-- * Only partial indexes on pending rows are read: delivered and dead rows,
--   however many, cost nothing.
-- * Times come from the database clock (now()), never from the relay's.
-- * Per-key ordering: an event with an ordering key is taken only when no
--   earlier event (lower id) of its key is undelivered: waiting, pending
--   (due or in backoff), in flight or dead. Ids of one key are in commit
--   order (outbox_enqueue's advisory lock, the row locks of the app's
--   rows for trigger events), and an earlier event is committed, hence
--   visible to this statement, before a later one is. Normally a pending
--   keyed event is already its key's head (later ones are 'waiting', in no
--   pending index); the check is one probe of outbox_key_undelivered and
--   is what the guarantee rests on (stale snapshots of REPEATABLE READ
--   writers, forced re-drives). Unkeyed events skip it.
--
-- Low-water mark. Every claimed row leaves an entry in the pending indexes
-- (outbox_pending_due, outbox_pending_user) that points at a dead row
-- version once the row moves on. VACUUM removes such entries, and index
-- scans mark them dead, only once no snapshot may still see the old
-- version: while a long transaction holds the xmin horizon (a REPEATABLE
-- READ report, pg_dump, a standby's hot_standby_feedback) they pile up at
-- the front of both indexes and a claim that starts at the front fetches
-- the heap tuple of every one of them (measured: p50 commit-to-endpoint 9
-- ms -> 4 s within 70 s at 500 leads/s, `outbox-relay bench -scenario
-- snapshot`). The relay passes the next_attempt_at of the oldest row the
-- fill pass took last time (@low_water; outbox.Store keeps it): every pending row
-- older than that was claimed or skipped as locked then, so the bound lets
-- each scan start past the dead entries, which are then rejected on the
-- index tuple alone, without a heap fetch. Rows that can appear behind the
-- mark (a lead whose transaction began before the mark and committed after
-- it, a row released by another relay, a keyed row whose predecessor was
-- delivered meanwhile, a claim that rolled back) are found by the re-check
-- (pending_behind_mark.sql, every Store.RecheckInterval, default 2 s, on
-- its own connection: relay.Rechecker), which lowers the mark to the
-- oldest of them, so nothing is skipped for longer than that. While a
-- long transaction holds the horizon the re-check walks the dead entries
-- the mark lets the claim skip, and is paced to at most ~2 % of its
-- connection's time (backoff.Paced: 20 s apart at most), never delaying a
-- claim. A claim without a mark (NULL: after a start or a release) reads
-- from the front.
WITH RECURSIVE backlog AS MATERIALIZED (
  SELECT count(*) AS due
  FROM (SELECT 1
        FROM outbox
        WHERE status = 'pending' AND next_attempt_at <= now()
          AND next_attempt_at >= coalesce(sqlc.narg(low_water)::timestamptz, '-infinity')
        LIMIT sqlc.arg(max_rows)::int + 1) AS d
),
users (user_id, n) AS (
  (SELECT user_id, 1
   FROM outbox
   WHERE status = 'pending' AND user_id > sqlc.arg(user_cursor)::text AND next_attempt_at <= now()
     AND next_attempt_at >= coalesce(sqlc.narg(low_water)::timestamptz, '-infinity')
     AND (SELECT due FROM backlog) > sqlc.arg(max_rows)::int
   ORDER BY user_id
   LIMIT 1)
  UNION ALL
  SELECT (SELECT o.user_id
          FROM outbox AS o
          WHERE o.status = 'pending' AND o.user_id > u.user_id AND o.next_attempt_at <= now()
            AND o.next_attempt_at >= coalesce(sqlc.narg(low_water)::timestamptz, '-infinity')
          ORDER BY o.user_id
          LIMIT 1),
         u.n + 1
  FROM users AS u
  WHERE u.user_id IS NOT NULL AND u.n < sqlc.arg(max_users)::int
),
fair AS MATERIALIZED (
  SELECT c.id
  FROM users AS u
  CROSS JOIN LATERAL (
    SELECT o.id
    FROM outbox AS o
    WHERE o.status = 'pending' AND o.user_id = u.user_id AND o.next_attempt_at <= now()
      AND o.next_attempt_at >= coalesce(sqlc.narg(low_water)::timestamptz, '-infinity')
      AND (o.ordering_key IS NULL OR NOT EXISTS (
             SELECT 1 FROM outbox AS e
             WHERE e.ordering_key = o.ordering_key AND e.id < o.id
               AND e.status IN ('waiting', 'pending', 'in_flight', 'dead')))
    ORDER BY o.next_attempt_at, o.id
    LIMIT sqlc.arg(per_user)::int
    FOR UPDATE SKIP LOCKED
  ) AS c
  WHERE u.user_id IS NOT NULL
  LIMIT sqlc.arg(max_rows)::int
),
fill AS MATERIALIZED (
  SELECT id
  FROM outbox
  WHERE status = 'pending' AND next_attempt_at <= now()
    AND next_attempt_at >= coalesce(sqlc.narg(low_water)::timestamptz, '-infinity')
    AND id <> ALL (ARRAY(SELECT id FROM fair))
    AND (ordering_key IS NULL OR NOT EXISTS (
           SELECT 1 FROM outbox AS e
           WHERE e.ordering_key = outbox.ordering_key AND e.id < outbox.id
             AND e.status IN ('waiting', 'pending', 'in_flight', 'dead')))
  ORDER BY next_attempt_at, id
  LIMIT greatest(sqlc.arg(max_rows)::int - (SELECT count(*) FROM fair), 0)
  FOR UPDATE SKIP LOCKED
)
UPDATE outbox AS o
SET status           = 'in_flight',
    attempts         = o.attempts + 1,
    lease_owner      = sqlc.arg(relay_id)::text,
    claimed_at       = now(),
    lease_expires_at = now() + sqlc.arg(lease_ms)::bigint * interval '1 millisecond'
WHERE o.id = ANY (ARRAY(SELECT id FROM fair UNION ALL SELECT id FROM fill))
RETURNING o.id, o.event_id::text AS event_id, o.event_name, o.user_id, o.payload::text AS payload, o.attempts, o.attempts_base, o.created_at,
          o.id = ANY (ARRAY(SELECT id FROM fair)) AS fair, o.next_attempt_at, (o.ordering_key IS NOT NULL)::boolean AS keyed;
