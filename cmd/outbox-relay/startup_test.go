package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paragon-outbox/outbox-relay/internal/migrate"
	"github.com/paragon-outbox/outbox-relay/internal/pgcluster"
	"github.com/paragon-outbox/outbox-relay/internal/pgutil"
	"github.com/paragon-outbox/outbox-relay/internal/testdb"
	"github.com/paragon-outbox/outbox-relay/internal/testutil"
)

// TestRelayExitsAtOnceOnPermanentDatabaseErrors: a missing database, a
// missing role, a wrong password or missing privileges exit 1 without
// waiting out RELAY_STARTUP_TIMEOUT (no "retrying" line), with the cause and
// what to do, and never print the password.
func TestRelayExitsAtOnceOnPermanentDatabaseErrors(t *testing.T) {
	keyPath, _ := writeKey(t)
	db := testdb.New(t)
	ctx := context.Background()

	// A role that may log in but holds no privilege on the outbox.
	role := fmt.Sprintf("relay_noprivs_%d", time.Now().UnixNano())
	if _, err := db.Pool.Exec(ctx, "CREATE ROLE "+role+" LOGIN"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = db.Pool.Exec(context.Background(), "DROP OWNED BY "+role)
		_, _ = db.Pool.Exec(context.Background(), "DROP ROLE "+role)
	})
	// It may read the schema version, so the check that fails is the
	// relay's own statements.
	if _, err := db.Pool.Exec(ctx, "GRANT SELECT ON goose_db_version TO "+role); err != nil {
		t.Fatal(err)
	}
	noPrivs := withUser(t, db.URL, role, "")

	// Wrong password needs password authentication: a private cluster.
	c := pgcluster.New(t, "auth", pgcluster.Options{PasswordAuth: true})
	c.MustExec("postgres", "CREATE ROLE relay_pw LOGIN PASSWORD 'right-password'")
	wrongPW := withUser(t, c.URL("postgres"), "relay_pw", "s3cretpw")

	cases := []struct {
		name, url string
		want      []string
	}{
		{"missing database", strings.Replace(db.URL, "/"+db.Name, "/no_such_db_outbox", 1), []string{"3D000", "does not exist: check the name"}},
		{"missing role", withUser(t, db.URL, "no_such_role_outbox", ""), []string{"28000", "create the role as in sql/roles.sql"}},
		{"wrong password", wrongPW, []string{"28P01", "check the password"}},
		{"missing privileges", noPrivs, []string{"42501", "cannot run its claim statement", "sql/roles.sql"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			t.Setenv("PARAGON_PROJECT_ID", "p1")
			t.Setenv("PARAGON_SIGNING_KEY_FILE", keyPath)
			t.Setenv("DATABASE_URL", tc.url)
			t.Setenv("RELAY_STARTUP_TIMEOUT", "10m")
			t.Setenv("RELAY_ADMIN_ADDR", "off")
			code, _, stderr := runCmd(t, "relay")
			if code != 1 {
				t.Fatalf("exit %d, want 1; stderr: %s", code, stderr)
			}
			if strings.Contains(stderr, "retrying") {
				t.Errorf("a permanent error was retried: %s", stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q does not contain %q", stderr, w)
				}
			}
			if strings.Contains(stderr, "s3cretpw") {
				t.Errorf("stderr shows the password: %s", stderr)
			}
		})
	}
}

// TestRelayWaitsOutARestartingServer: a refused connection and a server in
// crash recovery are transient: the relay waits (RELAY_STARTUP_TIMEOUT) and
// starts once the server is back.
func TestRelayWaitsOutARestartingServer(t *testing.T) {
	keyPath, _ := writeKey(t)
	c := pgcluster.New(t, "restart", pgcluster.Options{})
	ctx := context.Background()
	pool, err := pgutil.NewPool(ctx, c.URL("postgres"), pgutil.PoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrate.Up(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	pool.Close()
	c.Stop(pgcluster.Immediate)

	clearEnv(t)
	t.Setenv("PARAGON_PROJECT_ID", "p1")
	t.Setenv("PARAGON_SIGNING_KEY_FILE", keyPath)
	t.Setenv("DATABASE_URL", c.URL("postgres")+"&connect_timeout=2")
	t.Setenv("RELAY_STARTUP_TIMEOUT", "5m")
	t.Setenv("RELAY_ADMIN_ADDR", "off")
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan int, 1)
	var out, errb testutil.SyncBuffer
	go func() { done <- run(rctx, []string{"relay"}, &out, &errb) }()
	waitFor(t, &errb, "database not reachable yet")
	c.Start() // crash recovery, then accepting connections
	waitFor(t, &errb, "relay started")
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d; stderr: %s", code, errb.String())
	}
}

func waitFor(t *testing.T, b *testutil.SyncBuffer, s string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for !strings.Contains(b.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log within 3 minutes: %s", s, b.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func withUser(t *testing.T, u, user, password string) string {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	if password != "" {
		pu.User = url.UserPassword(user, password)
	} else {
		pu.User = url.User(user)
	}
	if _, err := pgx.ParseConfig(pu.String()); err != nil {
		t.Fatal(err)
	}
	return pu.String()
}
