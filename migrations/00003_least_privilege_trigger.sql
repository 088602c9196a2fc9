-- +goose Up

-- Least privilege: the role that inserts leads needs no privilege on the
-- outbox. The trigger writes the outbox row with the privileges of the
-- function's owner (the role that ran the migrations), so sql/roles.sql can
-- give the app INSERT on leads and nothing on outbox.
--
-- PostgreSQL facts this relies on (PostgreSQL 13-17 documentation):
--
-- * A trigger function runs as the role whose statement fired the trigger
--   (SECURITY INVOKER, the default), so without this migration the app's
--   role would need INSERT on outbox. SECURITY DEFINER makes it run as its
--   owner instead ("CREATE FUNCTION", parameter SECURITY DEFINER).
--
-- * A SECURITY DEFINER function must pin its search_path ("CREATE
--   FUNCTION", section "Writing SECURITY DEFINER Functions Safely"): the
--   body names outbox and outbox_uuidv7() unqualified, and it would
--   otherwise resolve them on the inserting session's search_path, which
--   that session controls. The temporary schema is searched FIRST for
--   tables unless search_path names it, so a session could otherwise
--   `CREATE TEMP TABLE outbox (...)` and capture the event; pg_temp goes
--   last. (pg_temp is never searched for functions or operators.) The
--   path is pg_catalog, the schema this migration runs in, pg_temp: the
--   schema is read with current_schema() here, so an install into a
--   non-public schema pins that schema.
--
-- * EXECUTE on a trigger function is checked when CREATE TRIGGER runs, not
--   when the trigger fires ("CREATE TRIGGER", Notes: "The user must also
--   have EXECUTE privilege on the trigger function"; firing is done by the
--   trigger manager without an ACL check, and a direct call fails anyway:
--   PL/pgSQL raises "trigger functions can only be called as triggers").
--   So revoking EXECUTE from PUBLIC takes nothing from the roles that
--   insert leads (internal/roles tests prove it); it only stops anyone but
--   the owner from attaching this SECURITY DEFINER function to a table of
--   their own, which the documentation recommends for every SECURITY
--   DEFINER function (same section: "by default, execute privilege is
--   granted to PUBLIC for newly created functions").
--
-- * outbox_uuidv7() is left as it is (SECURITY INVOKER, no SET clause,
--   EXECUTE for PUBLIC). It reads no table, so running it as its owner
--   would grant nothing; called from the trigger it already runs as the
--   owner and under the pinned search_path (a SQL function without a SET
--   clause uses its caller's). A SET clause or SECURITY DEFINER would stop
--   the planner inlining it (inline_function() in
--   src/backend/optimizer/util/clauses.c gives up on prosecdef or a
--   proconfig), adding a call and a GUC save/restore to every lead insert
--   for no gain: measured on 20,000-row INSERTs (best of six), the trigger
--   as SECURITY DEFINER costs about 6% per lead, and outbox_uuidv7() as
--   SECURITY DEFINER with its own search_path about 30% more. It stays
--   callable by PUBLIC because it is outbox.event_id's DEFAULT.
--
-- The owner of lead_created_to_outbox() is whoever ran this migration; it
-- must keep INSERT on outbox (it created it). Run migrations as a
-- dedicated owner role rather than a superuser: a SECURITY DEFINER
-- function owned by a superuser runs as superuser.

-- +goose StatementBegin
DO $do$
DECLARE
  s text := current_schema();
BEGIN
  IF s IS NULL OR to_regprocedure(format('%I.lead_created_to_outbox()', s)) IS NULL THEN
    RAISE EXCEPTION 'lead_created_to_outbox() is not in the current schema (%): run the migrations with the search_path they were first applied with', coalesce(s, 'none');
  END IF;
  EXECUTE format('ALTER FUNCTION %I.lead_created_to_outbox() SECURITY DEFINER SET search_path = pg_catalog, %I, pg_temp', s, s);
  EXECUTE format('REVOKE EXECUTE ON FUNCTION %I.lead_created_to_outbox() FROM PUBLIC', s);
END
$do$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DO $do$
DECLARE
  s text := current_schema();
BEGIN
  EXECUTE format('ALTER FUNCTION %I.lead_created_to_outbox() SECURITY INVOKER RESET search_path', s);
  EXECUTE format('GRANT EXECUTE ON FUNCTION %I.lead_created_to_outbox() TO PUBLIC', s);
END
$do$;
-- +goose StatementEnd
