-- +goose Up

-- outbox_xmin_horizon(): who holds back the xmin horizon of this database,
-- for `outbox-relay status` and the relay's gauge.
--
-- While any snapshot older than a delivered row's last update lives, VACUUM
-- may remove neither that row version nor its index entries, and index scans
-- cannot mark them dead: the outbox's pending and in-flight indexes fill with
-- entries every claim walks again (docs/RELIABILITY.md, "Long
-- transactions"). The holders are: a session's backend_xmin (an open
-- REPEATABLE READ or SERIALIZABLE transaction, a long query, pg_dump), a
-- prepared transaction, a replication slot's xmin or catalog_xmin, and a
-- standby's hot_standby_feedback (the walsender's backend_xmin).
--
-- Least privilege: another role's backend_xmin in pg_stat_activity is
-- visible only to superusers and members of pg_read_all_stats, which would
-- also show every session's query text. This function runs as its owner
-- (the role that ran the migrations; give it pg_read_all_stats if it is not
-- a superuser, or sessions of other roles are not seen) and returns only
-- what the operator needs: the kind of holder, a short description (pid,
-- role, application, state; never the query), the age of its transaction in
-- seconds (NULL for slots, which have no start time) and the age of its xmin
-- in transactions. sql/roles.sql grants EXECUTE to outbox_relay and
-- outbox_operator; PUBLIC may not call it. search_path is pinned as every
-- SECURITY DEFINER function must.
CREATE FUNCTION outbox_xmin_horizon()
RETURNS TABLE (holder text, detail text, age_seconds double precision, xmin_age integer)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT h.holder, h.detail, h.age_seconds, h.xmin_age FROM (
    SELECT 'session' AS holder,
           format('pid %s, role %s, application %s, %s', a.pid, a.usename, coalesce(nullif(a.application_name, ''), '-'), coalesce(a.state, '-')) AS detail,
           extract(epoch FROM clock_timestamp() - coalesce(a.xact_start, a.query_start, a.backend_start))::double precision AS age_seconds,
           age(a.backend_xmin) AS xmin_age
    FROM pg_stat_activity AS a
    WHERE a.backend_xmin IS NOT NULL AND a.pid <> pg_backend_pid()
      AND a.backend_type <> 'walsender'
      AND (a.datname = current_database() OR a.datname IS NULL)
    UNION ALL
    SELECT 'prepared transaction', format('gid %s, role %s', p.gid, p.owner),
           extract(epoch FROM clock_timestamp() - p.prepared)::double precision, age(p.transaction)
    FROM pg_prepared_xacts AS p
    WHERE p.database = current_database()
    UNION ALL
    SELECT 'replication slot', format('slot %s (%s)', s.slot_name, s.slot_type), NULL,
           greatest(age(s.xmin), age(s.catalog_xmin))
    FROM pg_replication_slots AS s
    WHERE s.xmin IS NOT NULL OR s.catalog_xmin IS NOT NULL
    UNION ALL
    SELECT 'hot_standby_feedback', format('standby %s (%s)', coalesce(nullif(r.application_name, ''), '-'), coalesce(host(r.client_addr), 'local')),
           NULL, age(r.backend_xmin)
    FROM pg_stat_replication AS r
    WHERE r.backend_xmin IS NOT NULL
  ) AS h
  ORDER BY h.xmin_age DESC NULLS LAST
  LIMIT 10
$$;
REVOKE ALL ON FUNCTION outbox_xmin_horizon() FROM PUBLIC;

-- +goose Down
DROP FUNCTION outbox_xmin_horizon();
