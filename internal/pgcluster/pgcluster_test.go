package pgcluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paragon-outbox/outbox-relay/internal/pgcluster"
)

// A row written on the primary reaches the standby by streaming; after the
// primary stops and the standby is promoted, the standby accepts writes.
func TestStandbyPromote(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	p := pgcluster.New(t, "primary", pgcluster.Options{})
	p.MustExec("postgres", "CREATE TABLE t (v int)")
	s := p.Standby(t, "standby")
	p.MustExec("postgres", "INSERT INTO t VALUES (1)")
	if err := p.WaitCaughtUp(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := s.Exec(ctx, "postgres", "INSERT INTO t VALUES (2)"); err == nil {
		t.Fatal("standby accepted a write before promotion")
	}
	p.Stop(pgcluster.Fast)
	s.Promote()
	s.MustExec("postgres", "INSERT INTO t VALUES (2)")
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("promoted standby has %d rows, want 2", n)
	}
}

// A crash (immediate stop) and restart runs recovery and keeps committed rows.
func TestCrashRestart(t *testing.T) {
	p := pgcluster.New(t, "crash", pgcluster.Options{})
	p.MustExec("postgres", "CREATE TABLE t (v int); INSERT INTO t VALUES (1)")
	p.Stop(pgcluster.Immediate)
	p.Start()
	p.MustExec("postgres", "INSERT INTO t SELECT v + 1 FROM t")
}
