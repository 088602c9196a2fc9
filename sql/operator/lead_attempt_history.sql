-- lead_attempt_history: the whole story of one lead's App Event, as a
-- timeline: when it was written, every delivery attempt (which relay, how
-- long, Paragon's answer, the error) and every re-drive (who, why, and the
-- state it was re-driven from), oldest first.
--
-- Takes the psql variable lead_id (leads.id):
--   psql "$DATABASE_URL" -v lead_id=42 -f sql/operator/lead_attempt_history.sql
--   or in psql:  \set lead_id 42   then   \i sql/operator/lead_attempt_history.sql
--
-- Columns:
--   outbox_id, event_id   the event (a lead normally has exactly one)
--   current_status        the event's status now
--   at                    when it happened (attempt: when it started)
--   kind                  created | attempt | redrive
--   attempt               attempt number (attempts keep counting across re-drives)
--   relay_id              relay that made the attempt
--   http_status           Paragon's answer (NULL: no response)
--   took                  attempt duration (NULL: interrupted)
--   outcome               attempt: delivered | failed | interrupted; redrive: re-driven
--   detail                the attempt's error, or the re-drive's who / why /
--                         previous state
SELECT o.id           AS outbox_id,
       o.event_id,
       o.status       AS current_status,
       h.at,
       h.kind,
       h.attempt,
       h.relay_id,
       h.http_status,
       h.took,
       h.outcome,
       h.detail
FROM outbox AS o
CROSS JOIN LATERAL (
  SELECT o.created_at AS at, 'created' AS kind, 0 AS seq,
         NULL::int AS attempt, NULL::text AS relay_id, NULL::int AS http_status,
         NULL::interval AS took, NULL::text AS outcome,
         format('%s for user %s', o.event_name, o.user_id) AS detail
  UNION ALL
  SELECT a.started_at, 'attempt', 1,
         a.attempt, a.relay_id, a.http_status,
         a.finished_at - a.started_at,
         CASE WHEN a.finished_at IS NULL THEN 'interrupted'
              WHEN a.error IS NULL THEN 'delivered'
              ELSE 'failed' END,
         a.error
  FROM outbox_attempts AS a
  WHERE a.outbox_id = o.id
  UNION ALL
  SELECT r.redriven_at, 'redrive', 2,
         NULL, NULL, NULL, NULL, 're-driven',
         format('by %s%s; was %s after %s attempts%s', r.redriven_by,
                coalesce(' (' || r.reason || ')', ''),
                r.previous_status, r.previous_attempts,
                coalesce(': ' || r.previous_last_error, ''))
  FROM outbox_redrives AS r
  WHERE r.outbox_id = o.id
) AS h
WHERE o.lead_id = :'lead_id'
ORDER BY o.id, h.at, h.seq, h.attempt;
