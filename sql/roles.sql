-- roles: least-privilege group roles for outbox-relay, and their privileges
-- on this database's outbox tables. Run once per database, by a superuser or
-- a role with CREATEROLE that owns the tables (or may grant on them), AFTER
-- `outbox-relay migrate up` and with the same search_path the migrations ran
-- with (the grants apply to the objects in current_schema()):
--
--   psql "$OWNER_DATABASE_URL" -v ON_ERROR_STOP=1 -f sql/roles.sql
--
-- Re-running it is safe and brings the privileges back to exactly what is
-- listed here; re-run it after each upgrade whose migrations add a table.
-- It is plain SQL (no psql meta-commands), so any client can run it too;
-- the binary embeds it (package sql, Roles()).
--
-- Then give each login the group it needs, e.g.
--
--   CREATE ROLE app_user      LOGIN PASSWORD '...' IN ROLE outbox_app;
--   CREATE ROLE relay_user    LOGIN PASSWORD '...' IN ROLE outbox_relay;
--   CREATE ROLE oncall_alice  LOGIN PASSWORD '...' IN ROLE outbox_operator;
--   GRANT outbox_operator_write TO oncall_alice;   -- may re-drive and purge
--
-- The roles (NOLOGIN groups; roles are cluster-wide, the privileges below are
-- per database, hence "once per database"):
--
--   outbox_app             the application: reads and writes leads. Inserting
--                          a lead (INSERT or COPY) writes its outbox row
--                          through the trigger lead_created_to_outbox(),
--                          which runs as its owner (SECURITY DEFINER,
--                          migration 00003); the app has no privilege at all
--                          on outbox, outbox_attempts or outbox_redrives.
--   outbox_relay           `outbox-relay relay`: reads the outbox and updates
--                          only the columns its statements (sql/*.sql) set;
--                          records attempts; deletes old delivered and dead
--                          events (retention purge, internal/operator.Purge).
--                          No privilege on leads: the payload it sends is in
--                          outbox.payload. Writes its own heartbeat row in
--                          outbox_relays. It cannot run migrations: run
--                          `outbox-relay migrate up` as the owner.
--   outbox_operator        people on call: read-only. The status view, the
--                          outbox tables, the relays' heartbeats
--                          (outbox_relays) and goose's version table; every
--                          query in sql/operator/, `outbox-relay status`,
--                          `inspect`, `retry -dry-run`, `purge -dry-run`,
--                          `doctor`. No privilege on leads (payloads are in
--                          outbox.payload, which an operator may read).
--   outbox_operator_write  re-drive and purge (`outbox-relay retry`,
--                          `outbox-relay purge`): a member of
--                          outbox_operator, plus UPDATE on the columns a
--                          re-drive sets, INSERT on outbox_redrives (the
--                          audit trail) and DELETE for purge. Kept apart so
--                          that on-call read access does not imply the power
--                          to re-send or delete events.
--
-- Privileges per statement, checked against every statement these roles run
-- (sql/*.sql, internal/operator, internal/status, internal/migrate.Check):
--
-- * UPDATE is granted per column. SELECT ... FOR UPDATE (claim, rescue,
--   purge, re-drive) needs UPDATE on at least one column of the table, not
--   on all ("SELECT", The Locking Clause). UPDATE ... SET x = ... WHERE ...
--   needs UPDATE on the assigned columns and SELECT on the columns read
--   ("UPDATE", Notes).
-- * INSERT ... ON CONFLICT DO UPDATE (record_results) needs UPDATE on the
--   columns it sets and SELECT on the columns it reads ("INSERT", Notes);
--   ON CONFLICT DO NOTHING (rescue_expired) needs INSERT only.
-- * Identity columns (leads.id, outbox_redrives.id) need no privilege on
--   their sequence: the executor draws identity values without a sequence
--   permission check (ExecEvalNextValueExpr calls nextval_internal(seq,
--   false)), unlike a serial column's nextval() default. The tests insert
--   as both roles without any sequence grant.
-- * Foreign-key actions run as the owner of the table they query
--   (ri_triggers.c, ri_PlanCheck: "we'll do the check as that table's
--   owner"): purge's ON DELETE CASCADE to outbox_redrives needs no DELETE
--   on outbox_redrives. outbox_attempts has no foreign key since migration
--   00004, so purge deletes attempts itself and needs DELETE on them.
-- * Views run with their owner's privileges (unless security_invoker):
--   SELECT on outbox_delivery_status alone is enough to read it.
-- * The trigger's function needs no EXECUTE for the inserting role: EXECUTE
--   on a trigger function is checked by CREATE TRIGGER, not when it fires.
-- * No role here gets CREATE on the schema or TEMP on the database beyond
--   PostgreSQL's defaults. Before PostgreSQL 15, PUBLIC may CREATE in schema
--   public; consider `REVOKE CREATE ON SCHEMA public FROM PUBLIC` there.
-- * goose_db_version: the relay checks at start-up that every migration is
--   applied (migrate.Check reads it); `doctor` reads it too and takes
--   goose's advisory lock, which needs no grant.

-- 1. The group roles, created if missing. Several databases of one cluster
-- may run this at once: two sessions can both see a role missing, and the
-- second CREATE ROLE then fails with duplicate_object (42710) or, when it
-- raced the first one's insert into pg_authid, unique_violation (23505);
-- both mean "it exists now".
DO $roles$
DECLARE
  r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['outbox_app', 'outbox_relay', 'outbox_operator', 'outbox_operator_write'] LOOP
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = r) THEN
      BEGIN
        EXECUTE format('CREATE ROLE %I NOLOGIN', r);
      EXCEPTION WHEN duplicate_object OR unique_violation THEN
        NULL;
      END;
    END IF;
  END LOOP;
  -- outbox_operator_write includes outbox_operator (read access).
  IF NOT pg_catalog.pg_has_role('outbox_operator_write', 'outbox_operator', 'MEMBER') THEN
    BEGIN
      GRANT outbox_operator TO outbox_operator_write;
    EXCEPTION WHEN unique_violation THEN
      NULL;
    END;
  END IF;
END
$roles$;

-- 2. Privileges on this database's objects in current_schema(). Everything
-- the four roles held on these objects is revoked first, in the same
-- statement, so a re-run converges on exactly this list (a DO block is one
-- transaction: no session sees the gap). An advisory lock serialises two
-- runs on the same database (concurrent GRANTs on one object can fail with
-- "tuple concurrently updated").
DO $grants$
DECLARE
  s    text := pg_catalog.current_schema();
  objs text;
BEGIN
  PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('outbox-relay sql/roles.sql'));
  IF s IS NULL OR pg_catalog.to_regclass(format('%I.outbox_delivery_status', s)) IS NULL
     OR pg_catalog.to_regclass(format('%I.goose_db_version', s)) IS NULL THEN
    RAISE EXCEPTION 'roles.sql: no outbox tables in schema % (current_schema())', coalesce(s, '(none)')
      USING HINT = 'Run `outbox-relay migrate up` first, and run this script with the search_path the migrations used.';
  END IF;

  objs := format('%1$I.leads, %1$I.outbox, %1$I.outbox_attempts, %1$I.outbox_redrives, %1$I.outbox_delivery_status, %1$I.goose_db_version, %1$I.outbox_relays, %1$I.outbox_settings', s);
  EXECUTE format('REVOKE ALL ON TABLE %s FROM outbox_app, outbox_relay, outbox_operator, outbox_operator_write', objs);
  EXECUTE format('REVOKE ALL ON FUNCTION %1$I.outbox_enqueue(text, text, jsonb, text), %1$I.outbox_attach(regclass, text, text), %1$I.outbox_detach(regclass),
                  %1$I.outbox_xmin_horizon()
                  FROM outbox_app, outbox_relay, outbox_operator, outbox_operator_write', s);

  EXECUTE format('GRANT CONNECT ON DATABASE %I TO outbox_app, outbox_relay, outbox_operator', pg_catalog.current_database());
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO outbox_app, outbox_relay, outbox_operator', s);

  -- outbox_app: the leads table, and outbox_enqueue() to send any App
  -- Event from its own transactions (SECURITY DEFINER: it writes the
  -- outbox row as its owner, the app needs nothing on outbox). Never
  -- outbox_attach()/outbox_detach(): the owner of a table attaches it.
  EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I.leads TO outbox_app', s);
  EXECUTE format('GRANT EXECUTE ON FUNCTION %I.outbox_enqueue(text, text, jsonb, text) TO outbox_app', s);

  -- outbox_relay. Columns it sets: claim.sql (status, attempts, lease_owner,
  -- claimed_at, lease_expires_at), record_results.sql (status, delivered_at,
  -- next_attempt_at, last_error, last_http_status, lease_*, claimed_at),
  -- release.sql (status, attempts, lease_*, claimed_at), extend_leases.sql
  -- (lease_expires_at), rescue_expired.sql (status, next_attempt_at,
  -- last_error, last_http_status, lease_*, claimed_at), and attempts_base
  -- (record_results.sql raises it by one for an attempt that must not count
  -- toward max attempts). Never: id, event_id, event_name, user_id, lead_id,
  -- payload, created_at.
  EXECUTE format('GRANT SELECT, DELETE ON %I.outbox TO outbox_relay', s);
  EXECUTE format('GRANT UPDATE (status, attempts, attempts_base, next_attempt_at, delivered_at, last_error, last_http_status,
                                lease_owner, claimed_at, lease_expires_at) ON %I.outbox TO outbox_relay', s);
  -- Attempts: INSERT (record_results, rescue_expired), the columns
  -- record_results' ON CONFLICT DO UPDATE replaces, DELETE for purge.
  EXECUTE format('GRANT SELECT, INSERT, DELETE ON %I.outbox_attempts TO outbox_relay', s);
  EXECUTE format('GRANT UPDATE (relay_id, finished_at, http_status, error) ON %I.outbox_attempts TO outbox_relay', s);
  EXECUTE format('GRANT SELECT ON %I.goose_db_version TO outbox_relay', s);
  -- Heartbeats (internal/heartbeat): each relay upserts its own row, marks
  -- it stopped at shutdown and deletes rows not seen for a day.
  EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I.outbox_relays TO outbox_relay', s);
  -- outbox_settings: the relay reads max_payload_bytes.
  EXECUTE format('GRANT SELECT ON %I.outbox_settings TO outbox_relay', s);

  -- The xmin horizon (migration 00010): who keeps VACUUM from cleaning the
  -- outbox, for the relay's gauge and `outbox-relay status`. A narrow
  -- SECURITY DEFINER function instead of pg_read_all_stats, which would
  -- show every session's query text.
  EXECUTE format('GRANT EXECUTE ON FUNCTION %I.outbox_xmin_horizon() TO outbox_relay, outbox_operator', s);

  -- outbox_operator: read-only.
  EXECUTE format('GRANT SELECT ON %I.outbox, %I.outbox_attempts, %I.outbox_redrives, %I.outbox_delivery_status, %I.goose_db_version, %I.outbox_relays, %I.outbox_settings TO outbox_operator', s, s, s, s, s, s, s);

  -- outbox_operator_write: re-drive (internal/operator.Redrive sets status,
  -- next_attempt_at, attempts_base, last_error, last_http_status and logs
  -- to outbox_redrives) and purge (DELETE; re-drives go by cascade).
  -- Skip (release an ordering key: the dead head becomes 'skipped', the
  -- next waiting event of the key pending) sets status and next_attempt_at
  -- and logs to outbox_redrives too: no further grant.
  EXECUTE format('GRANT UPDATE (status, next_attempt_at, attempts_base, last_error, last_http_status), DELETE ON %I.outbox TO outbox_operator_write', s);
  EXECUTE format('GRANT INSERT ON %I.outbox_redrives TO outbox_operator_write', s);
  EXECUTE format('GRANT DELETE ON %I.outbox_attempts TO outbox_operator_write', s);
END
$grants$;
