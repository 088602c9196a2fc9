-- name: XminHorizon :many
-- xmin_horizon: the holders of this database's xmin horizon, oldest xmin
-- first, through the SECURITY DEFINER function outbox_xmin_horizon()
-- (migration 00010; it needs EXECUTE, which sql/roles.sql grants to
-- outbox_relay and outbox_operator). Never a query text.
--
-- sqlc cannot see the function's result columns, so they are named and
-- typed here. age_seconds is -1 for slots and standbys, which have no start
-- time (the function says NULL; an age is never negative).
SELECT h.holder::text AS holder, h.detail::text AS detail,
       coalesce(h.age_seconds::float8, -1)::float8 AS age_seconds, h.xmin_age::int AS xmin_age
FROM outbox_xmin_horizon() AS h (holder, detail, age_seconds, xmin_age);
