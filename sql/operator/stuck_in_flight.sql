-- stuck_in_flight: events claimed by a relay whose lease has run out. A live
-- relay extends its leases every RELAY_LEASE/3, so an expired lease means
-- the relay died or lost the database mid-send. Any running relay rescues
-- these rows within seconds (the attempt is logged as interrupted and the
-- event becomes pending again, or dead after RELAY_MAX_ATTEMPTS). Rows that
-- stay in this list mean no relay is running.
--
-- Takes no variables:  psql "$DATABASE_URL" -f sql/operator/stuck_in_flight.sql
--
-- Columns: the event, the relay that held it (lease_owner), when it claimed
-- it, when the lease expired and for how long it has been expired
-- (expired_for), and the attempt that was under way (attempts).
--
-- Plan: the partial index outbox_in_flight_lease (in-flight rows only).
SELECT id,
       event_id,
       user_id,
       lead_id,
       lease_owner,
       attempts,
       claimed_at,
       lease_expires_at,
       now() - lease_expires_at AS expired_for
FROM outbox
WHERE status = 'in_flight'
  AND lease_expires_at < now()
ORDER BY lease_expires_at, id
LIMIT 200;
