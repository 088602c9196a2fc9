-- +goose Up

-- Every App Event, in order (issue 11): per-key ordering, Lead Updated and
-- Lead Deleted, outbox_enqueue() for any event from SQL, and
-- outbox_attach()/outbox_detach() for any table of the app.
--
-- Locking on a big live outbox: ADD COLUMN without a default, a CHECK
-- constraint added NOT VALID, CREATE TABLE/FUNCTION/TRIGGER only hold their
-- lock for an instant. The index the ordering needs is built CONCURRENTLY
-- by the next migration, outside a transaction.

-- ordering_key: events with the same key are delivered in the order their
-- transactions committed (README "Ordering"). NULL: no order (the relay's
-- full parallelism). Lead events use 'lead:<id>', attached tables
-- '<table>:<primary key>'.
ALTER TABLE outbox ADD COLUMN ordering_key text;

-- Two new states:
--   waiting  a keyed event written while an earlier event of its key was
--            undelivered; it is not in any pending index, so the claim never
--            walks it. It becomes pending when its key's earlier events are
--            delivered or skipped (record_results, the relay's promotion
--            sweep, an operator's skip).
--   skipped  a dead event an operator released (`outbox-relay skip`) so
--            that the events behind it on its key go out. Terminal, like
--            delivered; recorded in outbox_redrives.
-- The wider constraint is added NOT VALID: every existing row satisfied the
-- narrower one, and validating would scan the table under lock. New rows
-- are checked as usual.
ALTER TABLE outbox DROP CONSTRAINT outbox_status_valid;
ALTER TABLE outbox ADD CONSTRAINT outbox_status_valid
  CHECK (status IN ('waiting', 'pending', 'in_flight', 'delivered', 'dead', 'skipped')) NOT VALID;
ALTER TABLE outbox ADD CONSTRAINT outbox_ordering_key_not_blank
  CHECK (btrim(ordering_key) <> '') NOT VALID;

-- outbox_redrives also records releases of a key (skip) and forced
-- re-drives: action 'redrive' | 'skip'; forced: the event was re-driven
-- although a later event of its key had already been sent or claimed.
ALTER TABLE outbox_redrives ADD COLUMN action text NOT NULL DEFAULT 'redrive',
  ADD COLUMN forced boolean NOT NULL DEFAULT false;
ALTER TABLE outbox_redrives ADD CONSTRAINT outbox_redrives_action_valid
  CHECK (action IN ('redrive', 'skip'));

-- outbox_settings: settings the database itself enforces, read by
-- outbox_enqueue(), the attached tables' trigger and the relay. One row.
--   max_payload_bytes  largest payload (JSON text, eventId included) an
--                      event may have; default 1 MiB (1,048,576 bytes).
CREATE TABLE outbox_settings (
  singleton         boolean PRIMARY KEY DEFAULT true,
  max_payload_bytes integer NOT NULL DEFAULT 1048576,
  CONSTRAINT outbox_settings_one_row CHECK (singleton),
  CONSTRAINT outbox_settings_max_payload_positive CHECK (max_payload_bytes > 0)
);
INSERT INTO outbox_settings DEFAULT VALUES;

-- +goose StatementBegin
-- outbox_key_status returns the status a new event of ordering key k starts
-- in: 'waiting' when an earlier event of k is undelivered (waiting,
-- pending, in flight or dead) and visible to this statement, else
-- 'pending'. The claim re-checks the same condition (sql/claim.sql), so a
-- 'pending' chosen on a stale snapshot (REPEATABLE READ callers) is still
-- never sent ahead of an earlier event; 'waiting' only keeps the claim from
-- walking events that cannot go yet.
CREATE FUNCTION outbox_key_status(k text) RETURNS text
LANGUAGE sql STABLE
AS $fn$
  SELECT CASE WHEN k IS NOT NULL AND EXISTS (
           SELECT 1 FROM outbox
           WHERE ordering_key = k AND status IN ('waiting', 'pending', 'in_flight', 'dead'))
         THEN 'waiting' ELSE 'pending' END
$fn$;
-- +goose StatementEnd

-- +goose StatementBegin
-- outbox_camel turns a column name into the payload's camelCase field name:
-- owner_id -> ownerId, annual_revenue -> annualRevenue, "Due Date" ->
-- dueDate. Letters after '_', '-' or ' ' are upper-cased and the separators
-- dropped; the first letter is lower-cased.
CREATE FUNCTION outbox_camel(name text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $fn$
  SELECT lower(left(s, 1)) || substr(s, 2)
  FROM (SELECT string_agg(CASE WHEN o = 1 THEN w ELSE upper(left(w, 1)) || substr(w, 2) END, '' ORDER BY o) AS s
        FROM regexp_split_to_table(btrim(name, '_- '), '[_\- ]+') WITH ORDINALITY AS p(w, o)) AS x
$fn$;
-- +goose StatementEnd

-- +goose StatementBegin
-- outbox_enqueue writes one App Event in the caller's transaction and
-- returns its eventId (also set as the payload's "eventId").
--
--   event_name    App Event name, e.g. 'Deal Won'; not NULL, not blank.
--   user_id       the Connected User (Paragon User Token sub); not NULL,
--                 not blank.
--   payload       a JSON object without an "eventId" field, at most
--                 outbox_settings.max_payload_bytes bytes as JSON text
--                 once eventId is added.
--   ordering_key  NULL: no order. Otherwise events with this key are
--                 delivered in the order their transactions commit: the
--                 function takes a transaction-level advisory lock on the
--                 key (serialising concurrent writers of that key only,
--                 until they commit or roll back) before the event's id is
--                 drawn. Not blank.
--
-- Errors (nothing is written; the caller's transaction is aborted as by
-- any error):
--   22004 null_value_not_allowed   event_name, user_id or payload is NULL
--   22023 invalid_parameter_value  blank event_name, user_id or
--                                  ordering_key; payload not a JSON object;
--                                  payload has its own "eventId"
--   54000 program_limit_exceeded   payload over max_payload_bytes
CREATE FUNCTION outbox_enqueue(event_name text, user_id text, payload jsonb, ordering_key text DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql VOLATILE
AS $fn$
DECLARE
  eid   uuid;
  body  jsonb;
  lim   integer;
  size  integer;
BEGIN
  IF event_name IS NULL THEN
    RAISE EXCEPTION 'outbox_enqueue: event_name is NULL' USING ERRCODE = '22004';
  ELSIF btrim(event_name) = '' THEN
    RAISE EXCEPTION 'outbox_enqueue: event_name is blank' USING ERRCODE = '22023';
  ELSIF user_id IS NULL THEN
    RAISE EXCEPTION 'outbox_enqueue: user_id (the Connected User) is NULL' USING ERRCODE = '22004';
  ELSIF btrim(user_id) = '' THEN
    RAISE EXCEPTION 'outbox_enqueue: user_id (the Connected User) is blank' USING ERRCODE = '22023';
  ELSIF payload IS NULL THEN
    RAISE EXCEPTION 'outbox_enqueue: payload is NULL' USING ERRCODE = '22004',
      HINT = 'Pass a JSON object, e.g. ''{}''::jsonb.';
  ELSIF jsonb_typeof(payload) <> 'object' THEN
    RAISE EXCEPTION 'outbox_enqueue: payload is a JSON %, not an object', jsonb_typeof(payload) USING ERRCODE = '22023';
  ELSIF payload ? 'eventId' THEN
    RAISE EXCEPTION 'outbox_enqueue: payload has its own "eventId"; the outbox sets it' USING ERRCODE = '22023',
      HINT = 'Remove "eventId" from the payload: outbox_enqueue returns the eventId it sets.';
  ELSIF ordering_key IS NOT NULL AND btrim(ordering_key) = '' THEN
    RAISE EXCEPTION 'outbox_enqueue: ordering_key is blank (pass NULL for no order)' USING ERRCODE = '22023';
  END IF;

  eid := outbox_uuidv7();
  body := payload || jsonb_build_object('eventId', eid);
  SELECT s.max_payload_bytes INTO lim FROM outbox_settings AS s;
  size := octet_length(body::text);
  IF size > lim THEN
    RAISE EXCEPTION 'outbox_enqueue: payload is % bytes, over the limit of % bytes (outbox_settings.max_payload_bytes)', size, lim
      USING ERRCODE = '54000';
  END IF;

  IF ordering_key IS NOT NULL THEN
    -- Two-key form: its own lock space, apart from the app's one-bigint
    -- advisory locks. A hash collision only serialises two keys' writers.
    PERFORM pg_advisory_xact_lock(1869967988, hashtext(ordering_key));
  END IF;
  INSERT INTO outbox (event_id, event_name, user_id, payload, ordering_key, status)
  VALUES (eid, event_name, user_id, body, ordering_key, outbox_key_status(ordering_key));
  RETURN eid;
END
$fn$;
-- +goose StatementEnd

-- +goose StatementBegin
-- lead_created_to_outbox: as in migration 00007 (once per statement, over
-- the transition table), plus the ordering key 'lead:<id>'. A new lead's
-- key has no earlier event (unless an id is reused after a delete, which
-- the claim's check still orders), so its event starts pending without a
-- lookup.
CREATE OR REPLACE FUNCTION lead_created_to_outbox() RETURNS trigger
LANGUAGE plpgsql
AS $fn$
BEGIN
  INSERT INTO outbox (event_id, event_name, user_id, lead_id, ordering_key, payload)
  SELECT n.eid, 'Lead Created', n.owner_id, n.id, 'lead:' || n.id,
    jsonb_strip_nulls(jsonb_build_object(
      'eventId',           n.eid,
      'leadId',            n.id,
      'externalId',        nullif(n.external_id, ''),
      'firstName',         nullif(n.first_name, ''),
      'lastName',          nullif(n.last_name, ''),
      'email',             nullif(n.email, ''),
      'company',           nullif(n.company, ''),
      'title',             nullif(n.title, ''),
      'phone',             nullif(n.phone, ''),
      'leadSource',        nullif(n.lead_source, ''),
      'status',            nullif(n.status, ''),
      'country',           nullif(n.country, ''),
      'annualRevenue',     n.annual_revenue,
      'numberOfEmployees', n.number_of_employees,
      'description',       nullif(n.description, ''),
      'createdAt',         to_char(n.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
    ))
  FROM (SELECT l.*, outbox_uuidv7() AS eid FROM new_leads AS l OFFSET 0) AS n;
  RETURN NULL;
END
$fn$;
-- +goose StatementEnd

-- +goose StatementBegin
-- lead_updated_to_outbox writes "Lead Updated" when an UPDATE changed at
-- least one column (the trigger's WHEN clause skips the rest): the lead as
-- written, in the shape of Lead Created (NULLs and empty texts left out),
-- except that a field the update cleared is sent as null, plus
-- changedFields: the camelCase names of the changed columns in column
-- order ('ownerId' when the owner changed: the event then goes to the new
-- owner's Connected User).
CREATE FUNCTION lead_updated_to_outbox() RETURNS trigger
LANGUAGE plpgsql
AS $fn$
DECLARE
  eid     uuid := outbox_uuidv7();
  okey    text := 'lead:' || NEW.id;
  obj     jsonb;
  changed text[];
BEGIN
  changed := array_remove(ARRAY[
    CASE WHEN NEW.id IS DISTINCT FROM OLD.id THEN 'leadId' END,
    CASE WHEN NEW.external_id IS DISTINCT FROM OLD.external_id THEN 'externalId' END,
    CASE WHEN NEW.owner_id IS DISTINCT FROM OLD.owner_id THEN 'ownerId' END,
    CASE WHEN NEW.first_name IS DISTINCT FROM OLD.first_name THEN 'firstName' END,
    CASE WHEN NEW.last_name IS DISTINCT FROM OLD.last_name THEN 'lastName' END,
    CASE WHEN NEW.email IS DISTINCT FROM OLD.email THEN 'email' END,
    CASE WHEN NEW.company IS DISTINCT FROM OLD.company THEN 'company' END,
    CASE WHEN NEW.title IS DISTINCT FROM OLD.title THEN 'title' END,
    CASE WHEN NEW.phone IS DISTINCT FROM OLD.phone THEN 'phone' END,
    CASE WHEN NEW.lead_source IS DISTINCT FROM OLD.lead_source THEN 'leadSource' END,
    CASE WHEN NEW.status IS DISTINCT FROM OLD.status THEN 'status' END,
    CASE WHEN NEW.country IS DISTINCT FROM OLD.country THEN 'country' END,
    CASE WHEN NEW.annual_revenue IS DISTINCT FROM OLD.annual_revenue THEN 'annualRevenue' END,
    CASE WHEN NEW.number_of_employees IS DISTINCT FROM OLD.number_of_employees THEN 'numberOfEmployees' END,
    CASE WHEN NEW.description IS DISTINCT FROM OLD.description THEN 'description' END,
    CASE WHEN NEW.created_at IS DISTINCT FROM OLD.created_at THEN 'createdAt' END
  ], NULL);
  IF cardinality(changed) = 0 THEN
    RETURN NULL; -- only columns added after this migration changed
  END IF;
  obj := jsonb_build_object(
    'eventId',           eid,
    'leadId',            NEW.id,
    'externalId',        nullif(NEW.external_id, ''),
    'firstName',         nullif(NEW.first_name, ''),
    'lastName',          nullif(NEW.last_name, ''),
    'email',             nullif(NEW.email, ''),
    'company',           nullif(NEW.company, ''),
    'title',             nullif(NEW.title, ''),
    'phone',             nullif(NEW.phone, ''),
    'leadSource',        nullif(NEW.lead_source, ''),
    'status',            nullif(NEW.status, ''),
    'country',           nullif(NEW.country, ''),
    'annualRevenue',     NEW.annual_revenue,
    'numberOfEmployees', NEW.number_of_employees,
    'description',       nullif(NEW.description, ''),
    'createdAt',         to_char(NEW.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'));
  INSERT INTO outbox (event_id, event_name, user_id, lead_id, ordering_key, status, payload)
  VALUES (
    eid, 'Lead Updated', NEW.owner_id, NEW.id, okey, outbox_key_status(okey),
    jsonb_strip_nulls(obj)
      || coalesce((SELECT jsonb_object_agg(f, 'null'::jsonb) FROM unnest(changed) AS f
                   WHERE obj -> f = 'null'::jsonb), '{}'::jsonb)
      || jsonb_build_object('changedFields', to_jsonb(changed))
  );
  RETURN NULL;
END
$fn$;
-- +goose StatementEnd

-- +goose StatementBegin
-- lead_deleted_to_outbox writes "Lead Deleted": eventId, leadId,
-- externalId (null when the lead had none) and deletedAt (the deleting
-- transaction's start, ISO-8601 UTC with milliseconds).
CREATE FUNCTION lead_deleted_to_outbox() RETURNS trigger
LANGUAGE plpgsql
AS $fn$
DECLARE
  eid uuid := outbox_uuidv7();
  okey text := 'lead:' || OLD.id;
BEGIN
  INSERT INTO outbox (event_id, event_name, user_id, lead_id, ordering_key, status, payload)
  VALUES (
    eid, 'Lead Deleted', OLD.owner_id, OLD.id, okey, outbox_key_status(okey),
    jsonb_build_object(
      'eventId',    eid,
      'leadId',     OLD.id,
      'externalId', nullif(OLD.external_id, ''),
      'deletedAt',  to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
  );
  RETURN NULL;
END
$fn$;
-- +goose StatementEnd

CREATE TRIGGER leads_outbox_updated AFTER UPDATE ON leads
  FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION lead_updated_to_outbox();
CREATE TRIGGER leads_outbox_deleted AFTER DELETE ON leads
  FOR EACH ROW EXECUTE FUNCTION lead_deleted_to_outbox();

-- +goose StatementBegin
-- outbox_row_event is the trigger of attached tables (outbox_attach). Its
-- one argument is the attachment as JSON, written by outbox_attach:
--   {"entity": "Deal", "user": "<user column>", "table": "<table name>",
--    "pk": ["<pk column>", ...], "cols": [{"n": column, "c": camelName,
--    "k": "bytea" | "tstz" | ""}, ...]}   (columns in column order)
-- The row becomes a camelCase JSON object: numbers keep every digit
-- (jsonb numeric), timestamptz is ISO-8601 UTC ("...Z", microseconds;
-- inside composite values "+00:00"), bytea is base64 (inside composite
-- values hex "\\x..."), NULLs are left out (Updated: a changed field that
-- is now NULL is sent as null). The function runs with TimeZone UTC and
-- bytea_output hex whatever the session's settings.
CREATE FUNCTION outbox_row_event() RETURNS trigger
LANGUAGE plpgsql
AS $fn$
DECLARE
  cfg     jsonb := TG_ARGV[0]::jsonb;
  jn      jsonb;
  jo      jsonb;
  body    jsonb;
  changed text[];
  u       text;
  okey    text;
  ev      text;
  eid     uuid := outbox_uuidv7();
  lim     integer;
  size    integer;
BEGIN
  IF TG_OP = 'DELETE' THEN
    jn := to_jsonb(OLD);
  ELSE
    jn := to_jsonb(NEW);
  END IF;
  u := jn ->> (cfg ->> 'user');
  IF u IS NULL OR btrim(u) = '' THEN
    RAISE EXCEPTION 'outbox: column %.% is NULL or blank in this row: its % event needs a Connected User',
        TG_TABLE_NAME, cfg ->> 'user', (cfg ->> 'entity') || CASE TG_OP WHEN 'INSERT' THEN ' Created' WHEN 'UPDATE' THEN ' Updated' ELSE ' Deleted' END
      USING ERRCODE = '23502', SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME, COLUMN = cfg ->> 'user',
            HINT = 'Every row of a table attached with outbox_attach() needs a Connected User in its user column.';
  END IF;
  okey := (cfg ->> 'table') || ':' || (SELECT string_agg(coalesce(jn ->> p, ''), ':' ORDER BY o)
                                    FROM jsonb_array_elements_text(cfg -> 'pk') WITH ORDINALITY AS x(p, o));
  IF TG_OP = 'UPDATE' THEN
    jo := to_jsonb(OLD);
    changed := ARRAY(SELECT c.c FROM ROWS FROM (jsonb_to_recordset(cfg -> 'cols') AS (n text, c text, k text)) WITH ORDINALITY AS c(n, c, k, o)
                     WHERE jn -> c.n IS DISTINCT FROM jo -> c.n ORDER BY c.o);
    IF cardinality(changed) = 0 THEN
      RETURN NULL;
    END IF;
  END IF;
  body := coalesce((
    SELECT jsonb_object_agg(c.c,
             CASE WHEN jn -> c.n = 'null'::jsonb THEN 'null'::jsonb
                  WHEN c.k = 'bytea' THEN to_jsonb(translate(encode(decode(substr(jn ->> c.n, 3), 'hex'), 'base64'), E'\n', ''))
                  WHEN c.k = 'tstz' AND jn ->> c.n NOT IN ('infinity', '-infinity')
                    THEN to_jsonb(to_char((jn ->> c.n)::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
                  ELSE jn -> c.n END)
    FROM jsonb_to_recordset(cfg -> 'cols') AS c(n text, c text, k text)
    WHERE jn ? c.n AND (jn -> c.n <> 'null'::jsonb OR c.c = ANY (changed))), '{}'::jsonb);
  body := body || jsonb_build_object('eventId', eid);
  IF TG_OP = 'INSERT' THEN
    ev := (cfg ->> 'entity') || ' Created';
  ELSIF TG_OP = 'UPDATE' THEN
    ev := (cfg ->> 'entity') || ' Updated';
    body := body || jsonb_build_object('changedFields', to_jsonb(changed));
  ELSE
    ev := (cfg ->> 'entity') || ' Deleted';
    body := body || jsonb_build_object('deletedAt', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'));
  END IF;
  SELECT s.max_payload_bytes INTO lim FROM outbox_settings AS s;
  size := octet_length(body::text);
  IF size > lim THEN
    RAISE EXCEPTION 'outbox: the % event of this % row is % bytes, over the limit of % bytes (outbox_settings.max_payload_bytes)',
        ev, TG_TABLE_NAME, size, lim
      USING ERRCODE = '54000', SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME;
  END IF;
  INSERT INTO outbox (event_id, event_name, user_id, ordering_key, status, payload)
  VALUES (eid, ev, u, okey, outbox_key_status(okey), body);
  RETURN NULL;
END
$fn$;
-- +goose StatementEnd

-- +goose StatementBegin
-- outbox_attach makes table tbl send "<entity> Created", "<entity> Updated"
-- (only when a column changed; with changedFields) and "<entity> Deleted"
-- App Events, for the Connected User in user_column, with the ordering key
-- '<table>:<primary key>' (the values of a composite key joined with ':').
-- It creates three triggers named outbox_created, outbox_updated and
-- outbox_deleted on tbl. Calling it again with the same arguments (and the
-- same columns) changes nothing; otherwise it replaces the attachment and
-- raises a NOTICE saying so. Re-run it after adding or dropping columns:
-- the column list is read here.
--
-- Only the table's owner (or a member of the owning role, or a superuser)
-- may call it; EXECUTE is not granted to PUBLIC.
-- Errors: 42501 caller does not own tbl; 22004/22023 entity or
-- user_column NULL/blank; 42703 no such user column; 42P16 tbl has no
-- primary key; 42809 tbl is not a table.
CREATE FUNCTION outbox_attach(tbl regclass, entity text, user_column text) RETURNS void
LANGUAGE plpgsql VOLATILE
AS $fn$
DECLARE
  rel  pg_catalog.pg_class%ROWTYPE;
  pk   jsonb;
  cols jsonb;
  cfg  text;
  prev text;
  n    integer;
BEGIN
  IF tbl IS NULL THEN
    RAISE EXCEPTION 'outbox_attach: tbl is NULL' USING ERRCODE = '22004';
  END IF;
  SELECT * INTO rel FROM pg_catalog.pg_class WHERE oid = tbl;
  IF rel.relkind NOT IN ('r', 'p') THEN
    RAISE EXCEPTION 'outbox_attach: % is not a table', tbl USING ERRCODE = '42809';
  END IF;
  IF NOT pg_catalog.pg_has_role(current_user, rel.relowner, 'USAGE') THEN
    RAISE EXCEPTION 'outbox_attach: only the owner of % may attach it to the outbox', tbl USING ERRCODE = '42501';
  END IF;
  IF entity IS NULL OR user_column IS NULL THEN
    RAISE EXCEPTION 'outbox_attach: entity and user_column must not be NULL' USING ERRCODE = '22004';
  ELSIF btrim(entity) = '' OR btrim(user_column) = '' THEN
    RAISE EXCEPTION 'outbox_attach: entity and user_column must not be blank' USING ERRCODE = '22023';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                 WHERE attrelid = tbl AND attname = user_column AND attnum > 0 AND NOT attisdropped) THEN
    RAISE EXCEPTION 'outbox_attach: % has no column %', tbl, quote_ident(user_column) USING ERRCODE = '42703';
  END IF;
  SELECT jsonb_agg(a.attname ORDER BY k.o) INTO pk
  FROM pg_catalog.pg_constraint AS c
  CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, o)
  JOIN pg_catalog.pg_attribute AS a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
  WHERE c.conrelid = tbl AND c.contype = 'p';
  IF pk IS NULL THEN
    RAISE EXCEPTION 'outbox_attach: % has no primary key: its events need one for their ordering key', tbl
      USING ERRCODE = '42P16', HINT = 'Add a primary key, then attach.';
  END IF;
  SELECT jsonb_agg(jsonb_build_object(
           'n', a.attname,
           'c', outbox_camel(a.attname),
           'k', CASE a.atttypid WHEN 'bytea'::regtype THEN 'bytea' WHEN 'timestamptz'::regtype THEN 'tstz' ELSE '' END)
         ORDER BY a.attnum)
  INTO cols
  FROM pg_catalog.pg_attribute AS a
  WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped;
  cfg := jsonb_build_object('entity', entity, 'user', user_column, 'table', rel.relname, 'pk', pk, 'cols', cols)::text;

  SELECT count(*), max(encode(t.tgargs, 'escape')) INTO n, prev
  FROM pg_catalog.pg_trigger AS t
  WHERE t.tgrelid = tbl AND t.tgname IN ('outbox_created', 'outbox_updated', 'outbox_deleted');
  IF n = 3 AND prev = cfg || '\000' THEN
    RETURN; -- already attached exactly so
  END IF;
  IF n > 0 THEN
    RAISE NOTICE 'outbox_attach: replacing the outbox attachment of % (now entity %, user column %)', tbl, entity, user_column;
  END IF;
  IF n > 0 THEN
    EXECUTE format('DROP TRIGGER IF EXISTS outbox_created ON %s', tbl);
    EXECUTE format('DROP TRIGGER IF EXISTS outbox_updated ON %s', tbl);
    EXECUTE format('DROP TRIGGER IF EXISTS outbox_deleted ON %s', tbl);
  END IF;
  EXECUTE format('CREATE TRIGGER outbox_created AFTER INSERT ON %s FOR EACH ROW EXECUTE FUNCTION %s(%L)',
                 tbl, 'outbox_row_event'::regproc, cfg);
  EXECUTE format('CREATE TRIGGER outbox_updated AFTER UPDATE ON %s FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION %s(%L)',
                 tbl, 'outbox_row_event'::regproc, cfg);
  EXECUTE format('CREATE TRIGGER outbox_deleted AFTER DELETE ON %s FOR EACH ROW EXECUTE FUNCTION %s(%L)',
                 tbl, 'outbox_row_event'::regproc, cfg);
END
$fn$;
-- +goose StatementEnd

-- +goose StatementBegin
-- outbox_detach removes what outbox_attach created on tbl; rows written
-- afterwards send nothing. Detaching a table that is not attached does
-- nothing. Owner (or superuser) only, like outbox_attach (42501).
CREATE FUNCTION outbox_detach(tbl regclass) RETURNS void
LANGUAGE plpgsql VOLATILE
AS $fn$
BEGIN
  IF tbl IS NULL THEN
    RAISE EXCEPTION 'outbox_detach: tbl is NULL' USING ERRCODE = '22004';
  END IF;
  IF NOT pg_catalog.pg_has_role(current_user, (SELECT relowner FROM pg_catalog.pg_class WHERE oid = tbl), 'USAGE') THEN
    RAISE EXCEPTION 'outbox_detach: only the owner of % may detach it from the outbox', tbl USING ERRCODE = '42501';
  END IF;
  EXECUTE format('DROP TRIGGER IF EXISTS outbox_created ON %s', tbl);
  EXECUTE format('DROP TRIGGER IF EXISTS outbox_updated ON %s', tbl);
  EXECUTE format('DROP TRIGGER IF EXISTS outbox_deleted ON %s', tbl);
END
$fn$;
-- +goose StatementEnd

-- Privileges and pinned search_path, as migration 00003 explains:
-- * The trigger functions and outbox_enqueue run as their owner (SECURITY
--   DEFINER) so that the app's role needs no privilege on outbox; their
--   search_path is pinned to pg_catalog, this schema, pg_temp.
-- * outbox_row_event also pins TimeZone and bytea_output (the payload's
--   formats must not depend on the writing session).
-- * outbox_attach/outbox_detach stay SECURITY INVOKER: they create triggers
--   on the caller's table with the caller's rights, and check ownership.
--   CREATE TRIGGER needs EXECUTE on outbox_row_event, which only the owner
--   of the migrations has (and whoever it is granted to).
-- * EXECUTE is revoked from PUBLIC on every new function except the
--   helpers outbox_camel and outbox_key_status; sql/roles.sql grants
--   outbox_enqueue to outbox_app.
-- +goose StatementBegin
DO $do$
DECLARE
  s text := current_schema();
  p text := format('SET search_path = pg_catalog, %I, pg_temp', s);
BEGIN
  IF s IS NULL OR to_regprocedure(format('%I.lead_created_to_outbox()', s)) IS NULL THEN
    RAISE EXCEPTION 'lead_created_to_outbox() is not in the current schema (%): run the migrations with the search_path they were first applied with', coalesce(s, 'none');
  END IF;
  EXECUTE format('ALTER FUNCTION %I.lead_created_to_outbox() SECURITY DEFINER %s', s, p);
  EXECUTE format('ALTER FUNCTION %I.lead_updated_to_outbox() SECURITY DEFINER %s', s, p);
  EXECUTE format('ALTER FUNCTION %I.lead_deleted_to_outbox() SECURITY DEFINER %s', s, p);
  EXECUTE format('ALTER FUNCTION %I.outbox_enqueue(text, text, jsonb, text) SECURITY DEFINER %s', s, p);
  EXECUTE format('ALTER FUNCTION %I.outbox_row_event() SECURITY DEFINER %s SET TimeZone = ''UTC'' SET bytea_output = ''hex''', s, p);
  EXECUTE format('ALTER FUNCTION %I.outbox_attach(regclass, text, text) %s', s, p);
  EXECUTE format('ALTER FUNCTION %I.outbox_detach(regclass) %s', s, p);
  EXECUTE format('REVOKE EXECUTE ON FUNCTION %1$I.lead_updated_to_outbox(), %1$I.lead_deleted_to_outbox(), %1$I.outbox_row_event(),
                  %1$I.outbox_enqueue(text, text, jsonb, text), %1$I.outbox_attach(regclass, text, text), %1$I.outbox_detach(regclass) FROM PUBLIC', s);
END
$do$;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER leads_outbox_updated ON leads;
DROP TRIGGER leads_outbox_deleted ON leads;
DROP FUNCTION outbox_attach(regclass, text, text);
DROP FUNCTION outbox_detach(regclass);
DROP FUNCTION outbox_row_event();
DROP FUNCTION outbox_enqueue(text, text, jsonb, text);
DROP FUNCTION lead_updated_to_outbox();
DROP FUNCTION lead_deleted_to_outbox();
DROP FUNCTION outbox_key_status(text);
DROP FUNCTION outbox_camel(text);
DROP TABLE outbox_settings;
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION lead_created_to_outbox() RETURNS trigger
LANGUAGE plpgsql
AS $fn$
BEGIN
  INSERT INTO outbox (event_id, event_name, user_id, lead_id, payload)
  SELECT n.eid, 'Lead Created', n.owner_id, n.id,
    jsonb_strip_nulls(jsonb_build_object(
      'eventId',           n.eid,
      'leadId',            n.id,
      'externalId',        nullif(n.external_id, ''),
      'firstName',         nullif(n.first_name, ''),
      'lastName',          nullif(n.last_name, ''),
      'email',             nullif(n.email, ''),
      'company',           nullif(n.company, ''),
      'title',             nullif(n.title, ''),
      'phone',             nullif(n.phone, ''),
      'leadSource',        nullif(n.lead_source, ''),
      'status',            nullif(n.status, ''),
      'country',           nullif(n.country, ''),
      'annualRevenue',     n.annual_revenue,
      'numberOfEmployees', n.number_of_employees,
      'description',       nullif(n.description, ''),
      'createdAt',         to_char(n.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
    ))
  FROM (SELECT l.*, outbox_uuidv7() AS eid FROM new_leads AS l OFFSET 0) AS n;
  RETURN NULL;
END
$fn$;
-- +goose StatementEnd
-- +goose StatementBegin
DO $do$
DECLARE
  s text := current_schema();
BEGIN
  EXECUTE format('ALTER FUNCTION %I.lead_created_to_outbox() SECURITY DEFINER SET search_path = pg_catalog, %I, pg_temp', s, s);
END
$do$;
-- +goose StatementEnd
ALTER TABLE outbox_redrives DROP CONSTRAINT outbox_redrives_action_valid;
ALTER TABLE outbox_redrives DROP COLUMN action, DROP COLUMN forced;
ALTER TABLE outbox DROP CONSTRAINT outbox_ordering_key_not_blank;
ALTER TABLE outbox DROP CONSTRAINT outbox_status_valid;
ALTER TABLE outbox ADD CONSTRAINT outbox_status_valid
  CHECK (status IN ('pending', 'in_flight', 'delivered', 'dead')) NOT VALID;
ALTER TABLE outbox DROP COLUMN ordering_key;
