// Package failover holds the tests of what production Postgres does to a
// running relay: its node turning read-only, an administrator shutdown, a
// crash and crash recovery, terminated backends, and a primary stopped with
// its streaming standby promoted behind a multi-host DATABASE_URL. Each test
// runs the real outbox-relay binary against private clusters (package
// pgcluster), never the shared test server, and checks that the relay
// recovers without a restart and that every committed lead is delivered.
// Each logs the measured recovery time ("FAILOVER RESULT"). It has only
// tests.
package failover
