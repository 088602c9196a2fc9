-- +goose Up

-- SQL API hardening (after an adversarial review of migration 00008):
-- 1. A primary key may not change: the ordering key and the events'
--    identity (leadId, the attached row's key) come from it. The update
--    triggers of leads and of attached tables refuse such an UPDATE with
--    SQLSTATE 55000 (object_not_in_prerequisite_state): delete the row and
--    insert it again instead.
-- 2. outbox_attach refuses a table two of whose columns would have the
--    same camelCase field name (e.g. "eventId" and event_id, a_b and aB),
--    or a column named like a field the outbox sets itself (eventId,
--    changedFields, deletedAt): SQLSTATE 42711 (duplicate_column).
-- 3. "Blank" means empty or whitespace only, Unicode spaces included
--    (outbox_is_blank), in outbox_enqueue, outbox_attach and its trigger,
--    and leads.owner_id's CHECK constraint.
-- 4. Length limits, SQLSTATE 22001 (string_data_right_truncation):
--    event name at most 200 characters, user id (Connected User, the
--    Paragon User Token's sub) at most 255 characters, ordering key at
--    most 512 bytes (it is indexed).

-- +goose StatementBegin
-- outbox_is_blank: s is empty or only whitespace: ASCII space, \t, \n,
-- \v, \f, \r and the Unicode spaces U+0085, U+00A0, U+1680,
-- U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000 and U+FEFF.
-- NULL gives NULL. Used by leads' CHECK constraint, so EXECUTE stays
-- granted to PUBLIC.
CREATE FUNCTION outbox_is_blank(s text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog
AS $fn$
  SELECT s ~ '^[ \t\n\v\f\r\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*$'
$fn$;
-- +goose StatementEnd

-- Whitespace-only owners are refused from now on. NOT VALID: existing rows
-- are not checked, so they never block this migration (an existing row with
-- a blank owner must get a real owner at its next UPDATE). To check them
-- too, once none is left:
--   SELECT id, owner_id FROM leads WHERE outbox_is_blank(owner_id);
--   ALTER TABLE leads VALIDATE CONSTRAINT leads_owner_id_not_blank;
ALTER TABLE leads DROP CONSTRAINT leads_owner_id_not_blank;
ALTER TABLE leads ADD CONSTRAINT leads_owner_id_not_blank CHECK (NOT outbox_is_blank(owner_id)) NOT VALID;

-- +goose StatementBegin
-- outbox_enqueue: as in migration 00008, plus whitespace-only is blank and
-- the length limits. Errors (nothing is written):
--   22004 null_value_not_allowed          event_name, user_id or payload is NULL
--   22023 invalid_parameter_value         blank (empty or whitespace-only)
--                                         event_name, user_id or
--                                         ordering_key; payload not a JSON
--                                         object; payload has its own "eventId"
--   22001 string_data_right_truncation    event_name over 200 characters,
--                                         user_id over 255 characters,
--                                         ordering_key over 512 bytes
--   54000 program_limit_exceeded          payload over max_payload_bytes
CREATE OR REPLACE FUNCTION outbox_enqueue(event_name text, user_id text, payload jsonb, ordering_key text DEFAULT NULL)
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
  ELSIF outbox_is_blank(event_name) THEN
    RAISE EXCEPTION 'outbox_enqueue: event_name is blank' USING ERRCODE = '22023';
  ELSIF char_length(event_name) > 200 THEN
    RAISE EXCEPTION 'outbox_enqueue: event_name is % characters, over the limit of 200', char_length(event_name)
      USING ERRCODE = '22001';
  ELSIF user_id IS NULL THEN
    RAISE EXCEPTION 'outbox_enqueue: user_id (the Connected User) is NULL' USING ERRCODE = '22004';
  ELSIF outbox_is_blank(user_id) THEN
    RAISE EXCEPTION 'outbox_enqueue: user_id (the Connected User) is blank' USING ERRCODE = '22023';
  ELSIF char_length(user_id) > 255 THEN
    RAISE EXCEPTION 'outbox_enqueue: user_id (the Connected User) is % characters, over the limit of 255', char_length(user_id)
      USING ERRCODE = '22001';
  ELSIF payload IS NULL THEN
    RAISE EXCEPTION 'outbox_enqueue: payload is NULL' USING ERRCODE = '22004',
      HINT = 'Pass a JSON object, e.g. ''{}''::jsonb.';
  ELSIF jsonb_typeof(payload) <> 'object' THEN
    RAISE EXCEPTION 'outbox_enqueue: payload is a JSON %, not an object', jsonb_typeof(payload) USING ERRCODE = '22023';
  ELSIF payload ? 'eventId' THEN
    RAISE EXCEPTION 'outbox_enqueue: payload has its own "eventId"; the outbox sets it' USING ERRCODE = '22023',
      HINT = 'Remove "eventId" from the payload: outbox_enqueue returns the eventId it sets.';
  ELSIF ordering_key IS NOT NULL AND outbox_is_blank(ordering_key) THEN
    RAISE EXCEPTION 'outbox_enqueue: ordering_key is blank (pass NULL for no order)' USING ERRCODE = '22023';
  ELSIF octet_length(ordering_key) > 512 THEN
    RAISE EXCEPTION 'outbox_enqueue: ordering_key is % bytes, over the limit of 512 bytes', octet_length(ordering_key)
      USING ERRCODE = '22001', HINT = 'Use a short key, e.g. ''deal:<id>''.';
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
    PERFORM pg_advisory_xact_lock(1869967988, hashtext(ordering_key));
  END IF;
  INSERT INTO outbox (event_id, event_name, user_id, payload, ordering_key, status)
  VALUES (eid, event_name, user_id, body, ordering_key, outbox_key_status(ordering_key));
  RETURN eid;
END
$fn$;
-- +goose StatementEnd

-- +goose StatementBegin
-- lead_created_to_outbox: as in migration 00008, plus owner_id (the
-- Connected User) at most 255 characters (22001).
CREATE OR REPLACE FUNCTION lead_created_to_outbox() RETURNS trigger
LANGUAGE plpgsql
AS $fn$
DECLARE
  bad bigint;
BEGIN
  SELECT l.id INTO bad FROM new_leads AS l WHERE char_length(l.owner_id) > 255 LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'outbox: leads.owner_id of lead % is over the limit of 255 characters (it is the Connected User)', bad
      USING ERRCODE = '22001', TABLE = 'leads', COLUMN = 'owner_id';
  END IF;
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
-- lead_updated_to_outbox: as in migration 00008, but an UPDATE that
-- changes leads.id is refused (55000: the lead's ordering key and leadId
-- would change under its earlier events; delete and re-insert instead),
-- and owner_id at most 255 characters (22001).
CREATE OR REPLACE FUNCTION lead_updated_to_outbox() RETURNS trigger
LANGUAGE plpgsql
AS $fn$
DECLARE
  eid     uuid := outbox_uuidv7();
  okey    text := 'lead:' || NEW.id;
  obj     jsonb;
  changed text[];
BEGIN
  IF NEW.id IS DISTINCT FROM OLD.id THEN
    RAISE EXCEPTION 'outbox: changing the primary key leads.id (% to %) is not supported', OLD.id, NEW.id
      USING ERRCODE = '55000', TABLE = 'leads', COLUMN = 'id',
            HINT = 'Delete the lead and insert it again with the new id: its events are ordered and identified by the id.';
  END IF;
  IF char_length(NEW.owner_id) > 255 THEN
    RAISE EXCEPTION 'outbox: leads.owner_id of lead % is over the limit of 255 characters (it is the Connected User)', NEW.id
      USING ERRCODE = '22001', TABLE = 'leads', COLUMN = 'owner_id';
  END IF;
  changed := array_remove(ARRAY[
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
-- lead_deleted_to_outbox: as in migration 00008, plus owner_id at most 255
-- characters (22001; only a row written before this migration can have a
-- longer one).
CREATE OR REPLACE FUNCTION lead_deleted_to_outbox() RETURNS trigger
LANGUAGE plpgsql
AS $fn$
DECLARE
  eid uuid := outbox_uuidv7();
  okey text := 'lead:' || OLD.id;
BEGIN
  IF char_length(OLD.owner_id) > 255 THEN
    RAISE EXCEPTION 'outbox: leads.owner_id of lead % is over the limit of 255 characters (it is the Connected User)', OLD.id
      USING ERRCODE = '22001', TABLE = 'leads', COLUMN = 'owner_id',
            HINT = 'Set a valid owner_id first, then delete.';
  END IF;
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

-- +goose StatementBegin
-- outbox_row_event: as in migration 00008, plus: an UPDATE that changes a
-- primary key column is refused (55000; delete and re-insert instead); a
-- whitespace-only user column is blank (23502); the user column's value
-- at most 255 characters and the ordering key at most 512 bytes (22001).
CREATE OR REPLACE FUNCTION outbox_row_event() RETURNS trigger
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
  pkcol   text;
BEGIN
  ev := (cfg ->> 'entity') || CASE TG_OP WHEN 'INSERT' THEN ' Created' WHEN 'UPDATE' THEN ' Updated' ELSE ' Deleted' END;
  IF TG_OP = 'DELETE' THEN
    jn := to_jsonb(OLD);
  ELSE
    jn := to_jsonb(NEW);
  END IF;
  IF TG_OP = 'UPDATE' THEN
    jo := to_jsonb(OLD);
    SELECT p INTO pkcol FROM jsonb_array_elements_text(cfg -> 'pk') AS x(p)
    WHERE jn -> p IS DISTINCT FROM jo -> p LIMIT 1;
    IF pkcol IS NOT NULL THEN
      RAISE EXCEPTION 'outbox: changing the primary key column %.% is not supported (table attached with outbox_attach)',
          TG_TABLE_NAME, quote_ident(pkcol)
        USING ERRCODE = '55000', SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME, COLUMN = pkcol,
              HINT = 'Delete the row and insert it again with the new key: its events are ordered and identified by the primary key.';
    END IF;
  END IF;
  u := jn ->> (cfg ->> 'user');
  IF u IS NULL OR outbox_is_blank(u) THEN
    RAISE EXCEPTION 'outbox: column %.% is NULL or blank in this row: its % event needs a Connected User',
        TG_TABLE_NAME, cfg ->> 'user', ev
      USING ERRCODE = '23502', SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME, COLUMN = cfg ->> 'user',
            HINT = 'Every row of a table attached with outbox_attach() needs a Connected User in its user column.';
  ELSIF char_length(u) > 255 THEN
    RAISE EXCEPTION 'outbox: column %.% is % characters in this row, over the limit of 255 for a Connected User (its % event)',
        TG_TABLE_NAME, cfg ->> 'user', char_length(u), ev
      USING ERRCODE = '22001', SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME, COLUMN = cfg ->> 'user';
  END IF;
  okey := (cfg ->> 'table') || ':' || (SELECT string_agg(coalesce(jn ->> p, ''), ':' ORDER BY o)
                                    FROM jsonb_array_elements_text(cfg -> 'pk') WITH ORDINALITY AS x(p, o));
  IF octet_length(okey) > 512 THEN
    RAISE EXCEPTION 'outbox: the ordering key of this % row (''<table>:<primary key>'') is % bytes, over the limit of 512 bytes (its % event)',
        TG_TABLE_NAME, octet_length(okey), ev
      USING ERRCODE = '22001', SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
            HINT = 'Use a shorter primary key value.';
  END IF;
  IF TG_OP = 'UPDATE' THEN
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
  IF TG_OP = 'UPDATE' THEN
    body := body || jsonb_build_object('changedFields', to_jsonb(changed));
  ELSIF TG_OP = 'DELETE' THEN
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
-- outbox_attach: as in migration 00008, plus: whitespace-only entity or
-- user_column is blank (22023); entity at most 192 characters (22001: its
-- event names have at most 200); columns whose camelCase names collide
-- (e.g. "eventId" and event_id, a_b and aB), or a column named like a field
-- the outbox sets (eventId, changedFields, deletedAt), are refused naming
-- them (42711 duplicate_column). Tables attached before this migration are
-- not re-checked: re-run outbox_attach on them.
CREATE OR REPLACE FUNCTION outbox_attach(tbl regclass, entity text, user_column text) RETURNS void
LANGUAGE plpgsql VOLATILE
AS $fn$
DECLARE
  rel  pg_catalog.pg_class%ROWTYPE;
  pk   jsonb;
  cols jsonb;
  cfg  text;
  prev text;
  n    integer;
  dup  text;
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
  ELSIF outbox_is_blank(entity) OR outbox_is_blank(user_column) THEN
    RAISE EXCEPTION 'outbox_attach: entity and user_column must not be blank' USING ERRCODE = '22023';
  ELSIF char_length(entity) > 192 THEN
    RAISE EXCEPTION 'outbox_attach: entity is % characters, over the limit of 192 (its event names, ''<entity> Updated'', may have 200)', char_length(entity)
      USING ERRCODE = '22001';
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
  -- Two columns with one camelCase name, or a column named like a field the
  -- outbox sets, would silently lose a value in the payload.
  SELECT string_agg(format('%s become "%s"', cs, c), '; ' ORDER BY c) INTO dup
  FROM (SELECT x.c, string_agg(quote_ident(x.n), ' and ' ORDER BY x.o) AS cs
        FROM ROWS FROM (jsonb_to_recordset(cols) AS (n text, c text, k text)) WITH ORDINALITY AS x(n, c, k, o)
        GROUP BY x.c HAVING count(*) > 1) AS d;
  IF dup IS NOT NULL THEN
    RAISE EXCEPTION 'outbox_attach: columns of % have the same payload field name: %', tbl, dup
      USING ERRCODE = '42711', HINT = 'Rename one of the columns (camelCase drops ''_'', ''-'' and spaces), then attach.';
  END IF;
  SELECT string_agg(format('%s becomes "%s"', quote_ident(x.n), x.c), '; ') INTO dup
  FROM jsonb_to_recordset(cols) AS x(n text, c text, k text)
  WHERE x.c IN ('eventId', 'changedFields', 'deletedAt');
  IF dup IS NOT NULL THEN
    RAISE EXCEPTION 'outbox_attach: a column of % has the name of a payload field the outbox sets (eventId, changedFields, deletedAt): %', tbl, dup
      USING ERRCODE = '42711', HINT = 'Rename the column, then attach.';
  END IF;
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

-- Privileges and pinned search_path, as migrations 00003 and 00008 explain
-- (CREATE OR REPLACE FUNCTION resets SECURITY DEFINER and SET clauses).
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
END
$do$;
-- +goose StatementEnd

-- +goose Down
-- The functions as migration 00008 wrote them.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION outbox_enqueue(event_name text, user_id text, payload jsonb, ordering_key text DEFAULT NULL)
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
CREATE OR REPLACE FUNCTION lead_updated_to_outbox() RETURNS trigger
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
CREATE OR REPLACE FUNCTION lead_deleted_to_outbox() RETURNS trigger
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
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION outbox_row_event() RETURNS trigger
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
CREATE OR REPLACE FUNCTION outbox_attach(tbl regclass, entity text, user_column text) RETURNS void
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
END
$do$;
-- +goose StatementEnd
ALTER TABLE leads DROP CONSTRAINT leads_owner_id_not_blank;
ALTER TABLE leads ADD CONSTRAINT leads_owner_id_not_blank CHECK (btrim(owner_id) <> '') NOT VALID;
DROP FUNCTION outbox_is_blank(text);
