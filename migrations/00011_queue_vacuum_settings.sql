-- +goose Up

-- Autovacuum for queue tables. The outbox holds few live undelivered rows
-- and many delivered ones kept for retention; every event leaves two or
-- three dead row versions (claim, record; a retry adds more) and a dead
-- entry in each index whose key or predicate changed, and retention deletes
-- a day of rows at a time. Dead entries that VACUUM has not removed are
-- walked by every claim (docs/RELIABILITY.md, "Long transactions and
-- vacuum"), so the outbox wants frequent, quick vacuums. Per setting:
--
-- outbox (migration 00001 already set fillfactor 80 and both scale factors
-- to 0.02, i.e. vacuum after 2% of the table is dead instead of 20%):
-- * autovacuum_vacuum_threshold = 1000 (default 50): with the scale factor
--   this is "1000 + 2% of the rows"; a small outbox is not vacuumed every
--   minute for a handful of dead rows, a big one still early.
-- * autovacuum_vacuum_cost_limit = 2000 (default: vacuum_cost_limit 200,
--   shared by all workers): a vacuum of the outbox does ten times more
--   work between its 2 ms cost sleeps, so it finishes in seconds rather
--   than minutes while the relay keeps adding dead rows. A table with its
--   own cost limit is left out of the workers' cost balancing, so this
--   takes nothing from the vacuums of other tables. It is still
--   throttled: I/O stays bounded on a busy primary.
--
-- outbox_attempts (append-only, then deleted a day at a time by
-- retention): default scale factor 0.2 would wait for a fifth of a week's
-- attempts to be dead; 0.02 reclaims each day's purge within the day.
-- * autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor
--   = 0.02, autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_cost_limit
--   = 2000, for the same reasons as above.
--
-- Changing these takes SHARE UPDATE EXCLUSIVE on the tables: inserts and the
-- relay are not blocked.
ALTER TABLE outbox SET (autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_cost_limit = 2000);
ALTER TABLE outbox_attempts SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02,
                                 autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_cost_limit = 2000);

-- +goose Down
ALTER TABLE outbox RESET (autovacuum_vacuum_threshold, autovacuum_vacuum_cost_limit);
ALTER TABLE outbox_attempts RESET (autovacuum_vacuum_scale_factor, autovacuum_analyze_scale_factor,
                                   autovacuum_vacuum_threshold, autovacuum_vacuum_cost_limit);
