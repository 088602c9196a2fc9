package failover_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paragon-outbox/outbox-relay/internal/pgcluster"
)

// TestReadOnlyNode: the relay's pooled sessions end up on a read-only node
// (here: default_transaction_read_only turned on under them by a reload,
// while new sessions of the database are writable again, as after a
// failover behind a proxy or DNS name). Every statement on the old sessions
// fails with 25006; the relay must drop them and deliver new leads without
// a restart. Before the fix it failed until the pool recycled connections
// (an hour).
func TestReadOnlyNode(t *testing.T) {
	c := pgcluster.New(t, "readonly", pgcluster.Options{})
	url := migrated(t, c)
	// A busy relay's pool is full: every session it will use exists before
	// the node turns read-only (pool_min_conns), so none is opened afresh
	// by chance.
	e := newEnv(t, url+"&pool_min_conns=8&pool_max_conns=8")
	p := e.startRelay(t)
	insertLeads(t, url, 200, "before")
	waitDelivered(t, e, url)
	for end := time.Now().Add(deadline); ; {
		pids, err := relayPIDs(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		if len(pids) >= 8 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("the relay's pool never filled: %d sessions", len(pids))
		}
		time.Sleep(100 * time.Millisecond)
	}

	c.MustExec("postgres", "ALTER DATABASE app SET default_transaction_read_only = off") // new sessions: writable
	c.MustExec("postgres", "ALTER SYSTEM SET default_transaction_read_only = on")        // existing sessions: read-only
	c.MustExec("postgres", "SELECT pg_reload_conf()")
	time.Sleep(time.Second) // let every session see the reload

	t0 := insertLeads(t, url, 200, "after")
	waitDelivered(t, e, url)
	took := time.Since(t0)
	if !strings.Contains(p.out.String(), "25006") {
		t.Fatalf("the relay never hit a read-only session (25006): the test did not test anything\n%s", tail(p.out.String(), 3000))
	}
	if p.exited() {
		t.Fatal("relay exited")
	}
	waitReady(t, e)
	t.Logf("FAILOVER RESULT read_only_node recovered_and_delivered_in=%s", took.Round(10*time.Millisecond))
	p.stop(t)
}

// TestServerRestarts: administrator shutdown (57P01, pg_ctl stop -m fast),
// a crash with crash recovery (pg_ctl stop -m immediate; 57P03 while it
// recovers) and pg_terminate_backend of every relay session. After each,
// the same relay process delivers new leads, and /readyz is ready again.
func TestServerRestarts(t *testing.T) {
	c := pgcluster.New(t, "restarts", pgcluster.Options{})
	url := migrated(t, c)
	e := newEnv(t, url)
	p := e.startRelay(t)
	insertLeads(t, url, 100, "warmup")
	waitDelivered(t, e, url)

	cases := []struct {
		name  string
		fault func()
	}{
		{"admin_shutdown", func() { c.Stop(pgcluster.Fast); time.Sleep(2 * time.Second); c.Start() }},
		{"crash_recovery", func() { c.Stop(pgcluster.Immediate); time.Sleep(2 * time.Second); c.StartNoWait() }},
		{"terminate_backend", func() {
			pids, err := relayPIDs(context.Background(), url)
			if err != nil {
				t.Fatal(err)
			}
			for _, pid := range pids {
				c.MustExec("postgres", "SELECT pg_terminate_backend($1)", pid)
			}
			if len(pids) == 0 {
				t.Fatal("no relay sessions to terminate")
			}
		}},
	}
	for _, tc := range cases {
		// Leads in flight at the moment of the fault too.
		insertLeads(t, url, 300, tc.name+"-during")
		tf := time.Now()
		tc.fault()
		back := time.Now() // server back (or, for a crash, recovering)
		insertLeads(t, url, 100, tc.name+"-after")
		waitDelivered(t, e, url)
		took, sinceBack := time.Since(tf), time.Since(back)
		if p.exited() {
			t.Fatalf("%s: relay exited", tc.name)
		}
		waitReady(t, e)
		t.Logf("FAILOVER RESULT %s all_delivered_within=%s of the fault, %s after the server was started again", tc.name, took.Round(10*time.Millisecond), sinceBack.Round(10*time.Millisecond))
	}
	p.stop(t)
}

// TestPromotedStandby: a real streaming replica. The relay and the app use a
// multi-host DATABASE_URL with target_session_attrs=read-write; the primary
// crashes while leads are being written and delivered, and the standby is
// promoted; replication lagged, so the standby misses deliveries recorded on
// the primary. Every lead committed on the surviving primary is delivered
// (results recorded only on the lost primary are re-sent after the lease,
// never lost), by the same relay process.
func TestPromotedStandby(t *testing.T) {
	primary := pgcluster.New(t, "primary", pgcluster.Options{})
	migrated(t, primary)
	standby := primary.Standby(t, "standby")
	url := fmt.Sprintf("postgres://postgres@%s,%s/app?sslmode=disable&target_session_attrs=read-write&connect_timeout=2",
		primary.HostPort(), standby.HostPort())
	e := newEnv(t, url)
	e.vars = append(e.vars, "RELAY_RATE_LIMIT=300")
	p := e.startRelay(t)

	// The app writes leads continuously, reconnecting as it must.
	var wrote atomic.Int64
	stopWriting := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stopWriting:
				return
			default:
			}
			insertLeads(t, url, 20, fmt.Sprintf("stream-%d", i))
			wrote.Add(20)
			time.Sleep(20 * time.Millisecond)
		}
	}()
	for wrote.Load() < 400 {
		time.Sleep(50 * time.Millisecond)
	}
	// A burst the relay (rate-limited) works through for seconds, all of it
	// on the standby too.
	insertLeads(t, url, 1500, "burst")
	wctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	if err := primary.WaitCaughtUp(wctx, standby); err != nil {
		t.Fatal(err)
	}
	// Replication stops a moment before the crash (as an asynchronous
	// replica lags): the standby never learns some deliveries the relay
	// recorded on the primary. Those events must be sent again.
	standby.MustExec("postgres", "ALTER SYSTEM SET primary_conninfo = ''")
	standby.MustExec("postgres", "SELECT pg_reload_conf()")
	waitNoWALReceiver(t, standby)
	for n := e.srv.Count() + 100; e.srv.Count() < n; {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // and recorded on the primary only
	before := e.srv.Count()
	primary.Stop(pgcluster.Immediate)
	tf := time.Now()
	standby.Promote()
	promoted := time.Since(tf)
	for n := e.srv.Count(); e.srv.Count() == n; {
		time.Sleep(10 * time.Millisecond)
	}
	delivering := time.Since(tf)
	insertLeads(t, url, 50, "after-promote")
	for wrote.Load() < 1000 {
		time.Sleep(50 * time.Millisecond)
	}
	close(stopWriting)
	wg.Wait()
	waitDelivered(t, e, standby.URL("app"))
	if p.exited() {
		t.Fatal("relay exited")
	}
	waitReady(t, e)
	dups := 0
	for _, n := range e.srv.CountByEventID() {
		dups += n - 1
	}
	if dups == 0 {
		t.Fatal("no event was sent twice: the standby knew every delivery, so the re-send path was not exercised")
	}
	t.Logf("FAILOVER RESULT promoted_standby promote_took=%s delivering_again_after=%s fault_to_all_delivered=%s (rows in flight on the lost primary wait out RELAY_LEASE=13s) delivered_before_fault=%d re-sent=%d",
		promoted.Round(10*time.Millisecond), delivering.Round(10*time.Millisecond), time.Since(tf).Round(10*time.Millisecond), before, dups)
	p.stop(t)
}

// waitNoWALReceiver waits until standby has stopped streaming.
func waitNoWALReceiver(t *testing.T, standby *pgcluster.Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, standby.URL("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		var n int
		err = conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_wal_receiver").Scan(&n)
		conn.Close(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if ctx.Err() != nil {
			t.Fatal("the standby kept streaming")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
