-- +goose Up
-- The Lead Created trigger fires once per statement instead of once per row:
-- one INSERT … SELECT over the statement's new rows (a transition table)
-- writes every outbox row, the payload built in one SQL expression. Same
-- rows, same payload (the lead as written by the inserting statement, after
-- any BEFORE triggers), same order (outbox ids follow the insertion order),
-- same SECURITY DEFINER and pinned search_path as migration 00003.
--
-- Why (measured with backend CPU from /proc/<pid>/stat, docs/BENCHMARKS.md
-- "Insert tax"): COPY of leads.csv cost 58 µs of database CPU per lead with
-- the row trigger (a PL/pgSQL call, a GUC switch for the search_path and a
-- one-row INSERT per lead) and 29 µs with this one; a single-row INSERT
-- costs the same with either. Of the 29 µs about 12 are building the jsonb
-- payload and 10 the outbox's three secondary indexes written at insert
-- (event_id, lead_id, pending_user); the leads row itself is ~4 µs.
--
-- outbox_uuidv7() is volatile: the OFFSET 0 subquery keeps it one call per
-- row (a LATERAL subquery that does not reference the row is evaluated once,
-- giving every row the same event id).
--
-- Locking: CREATE OR REPLACE FUNCTION and DROP/CREATE TRIGGER take an
-- exclusive lock on leads only for the instant of the swap, in this
-- migration's transaction: inserts wait for it, none runs without a trigger.

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

-- CREATE OR REPLACE resets SECURITY DEFINER and the SET clause (they are part
-- of the definition; owner and privileges are kept): set them again, for the
-- schema the migrations run in, as 00003 does.
-- +goose StatementBegin
DO $do$
DECLARE
  s text := current_schema();
BEGIN
  EXECUTE format('ALTER FUNCTION %I.lead_created_to_outbox() SECURITY DEFINER SET search_path = pg_catalog, %I, pg_temp', s, s);
  EXECUTE format('REVOKE EXECUTE ON FUNCTION %I.lead_created_to_outbox() FROM PUBLIC', s);
END
$do$;
-- +goose StatementEnd

DROP TRIGGER leads_outbox ON leads;
CREATE TRIGGER leads_outbox AFTER INSERT ON leads
  REFERENCING NEW TABLE AS new_leads
  FOR EACH STATEMENT EXECUTE FUNCTION lead_created_to_outbox();

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION lead_created_to_outbox() RETURNS trigger
LANGUAGE plpgsql
AS $fn$
DECLARE
  eid uuid := outbox_uuidv7();
BEGIN
  INSERT INTO outbox (event_id, event_name, user_id, lead_id, payload)
  VALUES (
    eid,
    'Lead Created',
    NEW.owner_id,
    NEW.id,
    jsonb_strip_nulls(jsonb_build_object(
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
      'createdAt',         to_char(NEW.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
    ))
  );
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
DROP TRIGGER leads_outbox ON leads;
CREATE TRIGGER leads_outbox AFTER INSERT ON leads
  FOR EACH ROW EXECUTE FUNCTION lead_created_to_outbox();
