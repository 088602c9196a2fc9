-- +goose Up
-- Fair claiming across Connected Users (sql/claim.sql) walks pending rows by
-- user: a skip scan over this index finds the next user with due events in
-- one descent, and then that user's oldest due events.
CREATE INDEX outbox_pending_user ON outbox (user_id, next_attempt_at, id) WHERE status = 'pending';

-- +goose Down
DROP INDEX outbox_pending_user;
