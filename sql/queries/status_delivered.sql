-- name: StatusDelivered :one
-- status_delivered: the exact number of delivered events, from the partial
-- index outbox_delivered_at. It reads every delivered row's index entry, so
-- `status` runs it only while the outbox is small (see status_counts.sql).
SELECT count(*) AS delivered FROM outbox WHERE status = 'delivered';
