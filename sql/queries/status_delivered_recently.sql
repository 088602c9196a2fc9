-- name: StatusDeliveredRecently :one
-- status_delivered_recently: events delivered in the last @window_ms
-- milliseconds, a range of the partial index outbox_delivered_at.
SELECT count(*) AS delivered
FROM outbox
WHERE status = 'delivered' AND delivered_at > now() - sqlc.arg(window_ms)::bigint * interval '1 millisecond';
