package relay_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/dbsqlc"
	"github.com/paragon-outbox/outbox-relay/internal/pgutil"
	"github.com/paragon-outbox/outbox-relay/internal/relay"
	"github.com/paragon-outbox/outbox-relay/internal/testdb"
	"github.com/paragon-outbox/outbox-relay/internal/testutil"
)

// TestPermanentWatchAlone: while a statement of the relay fails for want of
// a privilege (REVOKE SELECT on outbox_settings, which the payload limit
// reads), the watcher logs the error again every Interval with what to do;
// once the privilege is granted back and the statement succeeds, it says so
// once and stops logging.
func TestPermanentWatchAlone(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	role := fmt.Sprintf("relay_watch_%d", time.Now().UnixNano())
	exec := func(q string) {
		t.Helper()
		if _, err := db.Pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec("CREATE ROLE " + role + " LOGIN")
	t.Cleanup(func() {
		_, _ = db.Pool.Exec(context.Background(), "DROP OWNED BY "+role)
		_, _ = db.Pool.Exec(context.Background(), "DROP ROLE "+role)
	})
	exec("GRANT SELECT ON outbox_settings TO " + role)
	u, err := url.Parse(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	pool, err := pgutil.NewPool(ctx, u.String(), pgutil.PoolOptions{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	readLimit := func() error { _, err := dbsqlc.New(pool).MaxPayloadBytes(ctx); return err }
	if err := readLimit(); err != nil {
		t.Fatal(err)
	}

	var logs testutil.SyncBuffer
	s := relay.NewPermanentWatch(pool, relay.PermanentWatchConfig{Interval: 50 * time.Millisecond, Poll: 5 * time.Millisecond},
		slog.New(slog.NewTextHandler(&logs, nil)))
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	const refused, accepted = "the database refuses the relay's statements", "the database accepts the relay's statements again"

	exec("REVOKE SELECT ON outbox_settings FROM " + role)
	if err := readLimit(); !pgutil.IsPermanent(err) {
		t.Fatalf("after REVOKE: %v, want a permanent error", err)
	}
	waitFor(t, "the refusal is logged again after Interval", func() bool { return strings.Count(logs.String(), refused) >= 2 })
	if out := logs.String(); !strings.Contains(out, "42501") || !strings.Contains(out, "sql/roles.sql") {
		t.Fatalf("the log does not give the error and what to do:\n%s", out)
	}

	exec("GRANT SELECT ON outbox_settings TO " + role)
	if err := readLimit(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the recovery is logged", func() bool { return strings.Contains(logs.String(), accepted) })
	time.Sleep(20 * 50 * time.Millisecond) // 20 Intervals: time to log again, were it still failing
	s.Stop()
	out := logs.String()
	after := out[strings.Index(out, accepted):]
	if strings.Contains(after, refused) || strings.Count(out, accepted) != 1 {
		t.Fatalf("the watcher went on logging after the fix:\n%s", out)
	}
}
