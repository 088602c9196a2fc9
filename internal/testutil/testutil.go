// Package testutil holds small helpers shared by tests: nothing the relay
// runs in production.
package testutil

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// SyncBuffer is a bytes.Buffer that a test may read while other goroutines
// (a command, a relay, a server) write to it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// WaitUntil calls cond every 5 ms until it returns true, and fails t (naming
// what it waited for) when timeout passes first. timeout is a generous
// bound against hanging, not a performance threshold.
func WaitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting after %s for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// WaitSettled polls the outbox through pool every 20 ms until at least want
// rows exist and every row is delivered or dead, and fails t after timeout
// (a generous bound for a hung relay, not a performance threshold) with the
// count of rows by status and the latest error.
func WaitSettled(t testing.TB, pool *pgxpool.Pool, want int64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var settled, total int64
		err := pool.QueryRow(context.Background(), `
			SELECT count(*) FILTER (WHERE status IN ('delivered', 'dead')), count(*) FROM outbox`).Scan(&settled, &total)
		if err != nil {
			t.Fatal(err)
		}
		if total >= want && settled == total {
			return
		}
		if time.Now().After(deadline) {
			var summary string
			_ = pool.QueryRow(context.Background(), `
				SELECT coalesce(string_agg(status || '=' || n || coalesce(' (' || e || ')', ''), ', '), 'no rows') FROM
				(SELECT status, count(*) AS n, max(last_error) AS e FROM outbox GROUP BY status) AS s`).Scan(&summary)
			t.Fatalf("after %s: %d of %d outbox rows settled (want %d): %s", timeout, settled, total, want, summary)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
