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

// TestRelayNeverHoldsUpAMigration: under load, a migration holding ACCESS
// EXCLUSIVE on outbox for longer than RELAY_LOCK_TIMEOUT makes the relay's
// waiting statements give up (55P03) and retry rather than queue without
// end; then `ALTER TABLE outbox ADD COLUMN` with lock_timeout = '2s'
// succeeds while lead inserts keep flowing, and every lead is delivered.
func TestRelayNeverHoldsUpAMigration(t *testing.T) {
	c := pgcluster.New(t, "locks", pgcluster.Options{})
	url := migrated(t, c)
	e := newEnv(t, url)
	e.vars = append(e.vars, "RELAY_LOCK_TIMEOUT=1s")
	p := e.startRelay(t)
	ctx := context.Background()

	var wrote atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			insertLeads(t, url, 10, fmt.Sprintf("load-%d", i))
			wrote.Add(10)
			time.Sleep(10 * time.Millisecond)
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	for wrote.Load() < 200 {
		time.Sleep(20 * time.Millisecond)
	}

	// A migration that holds the lock for 3 s.
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.out.String(), "55P03") {
		t.Fatalf("no relay statement gave up on its lock (55P03) while a migration held the outbox for 3s with RELAY_LOCK_TIMEOUT=1s\n%s", tail(p.out.String(), 3000))
	}

	// The migration a user would run, under load.
	n0 := wrote.Load()
	if _, err := conn.Exec(ctx, "SET lock_timeout = '2s'"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "ALTER TABLE outbox ADD COLUMN note text"); err != nil {
		t.Fatalf("ALTER TABLE outbox with lock_timeout 2s under a running relay: %v", err)
	}
	for wrote.Load() < n0+200 {
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	stop = make(chan struct{})
	waitDelivered(t, e, url)
	if p.exited() {
		t.Fatal("relay exited")
	}
	t.Logf("FAILOVER RESULT locks leads=%d delivered after a 3s ACCESS EXCLUSIVE lock and an ALTER TABLE under load", wrote.Load())
	p.stop(t)
}
