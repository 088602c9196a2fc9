-- +goose Up

-- outbox_delivery_status gains ordering_key (migration 00008 added the
-- column to outbox; the view predates it), as its last column so that
-- CREATE OR REPLACE VIEW can add it: the view keeps its grants (sql/roles.sql)
-- and takes its lock only for an instant.
CREATE OR REPLACE VIEW outbox_delivery_status (
  id, event_id, event_name, user_id, lead_id, status, attempts, attempts_base,
  last_http_status, last_error, created_at, next_attempt_at, delivered_at,
  time_to_deliver, lease_owner, lease_expires_at, redrive_count, ordering_key
) AS
SELECT o.id, o.event_id, o.event_name, o.user_id, o.lead_id, o.status, o.attempts, o.attempts_base,
       o.last_http_status, o.last_error, o.created_at,
       CASE WHEN o.status = 'pending' THEN o.next_attempt_at END,
       o.delivered_at,
       o.delivered_at - o.created_at,
       o.lease_owner, o.lease_expires_at,
       (SELECT count(*) FROM outbox_redrives AS r WHERE r.outbox_id = o.id),
       o.ordering_key
FROM outbox AS o;

-- +goose Down
-- A view cannot lose a column in place: drop and recreate it as 00002 made
-- it. The grants on it go with it: run sql/roles.sql again afterwards.
DROP VIEW outbox_delivery_status;
CREATE VIEW outbox_delivery_status (
  id, event_id, event_name, user_id, lead_id, status, attempts, attempts_base,
  last_http_status, last_error, created_at, next_attempt_at, delivered_at,
  time_to_deliver, lease_owner, lease_expires_at, redrive_count
) AS
SELECT o.id, o.event_id, o.event_name, o.user_id, o.lead_id, o.status, o.attempts, o.attempts_base,
       o.last_http_status, o.last_error, o.created_at,
       CASE WHEN o.status = 'pending' THEN o.next_attempt_at END,
       o.delivered_at,
       o.delivered_at - o.created_at,
       o.lease_owner, o.lease_expires_at,
       (SELECT count(*) FROM outbox_redrives AS r WHERE r.outbox_id = o.id)
FROM outbox AS o;
