-- +goose Up

-- outbox_relays: one row per running relay process, written by the relay
-- itself every few seconds (internal/heartbeat), so that `outbox-relay
-- console` — a separate process, possibly on an operator's machine — can show
-- which relays are running, their circuit breaker and how many events each is
-- holding. A relay that stops cleanly sets stopped_at; one that crashed just
-- stops updating last_seen_at. Rows older than a day are deleted by the
-- relays themselves. Tiny and never joined with the outbox.
CREATE TABLE outbox_relays (
  relay_id      text        PRIMARY KEY,
  version       text        NOT NULL,
  host          text        NOT NULL,
  started_at    timestamptz NOT NULL,
  last_seen_at  timestamptz NOT NULL,
  stopped_at    timestamptz,
  breaker_state text        NOT NULL,
  in_flight     integer     NOT NULL,
  CONSTRAINT outbox_relays_breaker_state_valid CHECK (breaker_state IN ('closed', 'open', 'half-open')),
  CONSTRAINT outbox_relays_in_flight_nonneg CHECK (in_flight >= 0)
);

-- Failed attempts by time, for the console's failures-per-minute chart and
-- its top errors: only attempts with an error are in it, so a successful
-- attempt's insert pays only the predicate check (measured in
-- docs/CONSOLE.md). Without it those figures would scan outbox_attempts.
CREATE INDEX IF NOT EXISTS outbox_attempts_failed_started_at ON outbox_attempts (started_at) WHERE error IS NOT NULL;

-- +goose Down
DROP INDEX outbox_attempts_failed_started_at;
DROP TABLE outbox_relays;
