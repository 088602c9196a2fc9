// Package testdb gives each test its own freshly migrated Postgres database.
//
// Where the database comes from, in order:
//  1. TEST_DATABASE_URL (any database on the server; the user must be allowed
//     to CREATE DATABASE). CI and this project's machines use this.
//  2. Otherwise, a throwaway Postgres started with testcontainers-go, where a
//     Docker engine is reachable.
//  3. Otherwise the test fails with a message saying how to provide one. It
//     never skips: a suite that silently ran nothing would look green.
//
// Every test database runs with ids above 2^31 (sequences restarted) and
// TimeZone America/Los_Angeles, so that int32 ids or zone-dependent
// scheduling fail tests.
//
// The schema is built once per server as a template database named after a
// hash of the embedded migrations, and each test gets `CREATE DATABASE ...
// TEMPLATE`, dropped when the test ends. Template creation is serialised
// across test processes with an advisory lock.
package testdb

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/testcontainers/testcontainers-go"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"

	"github.com/paragon-outbox/outbox-relay/internal/migrate"
	"github.com/paragon-outbox/outbox-relay/internal/pgutil"
	"github.com/paragon-outbox/outbox-relay/migrations"
)

// EnvURL names the environment variable holding the test server's URL.
const EnvURL = "TEST_DATABASE_URL"

// lockKey serialises template creation and cloning across test processes.
const lockKey = 7_202_611_300

var (
	serverOnce sync.Once
	serverURL  string
	serverErr  error
	container  testcontainers.Container
	counter    atomic.Int64
)

// server returns the URL of a Postgres server to create test databases on.
func server() (string, error) {
	serverOnce.Do(func() {
		if u := os.Getenv(EnvURL); u != "" {
			serverURL = u
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		var c *tcpostgres.PostgresContainer
		var err error
		func() {
			// testcontainers panics on some hosts without Docker; turn it into an error.
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("%v", r)
				}
			}()
			c, err = tcpostgres.Run(ctx, "postgres:16-alpine",
				tcpostgres.WithDatabase("postgres"),
				tcpostgres.WithUsername("postgres"),
				tcpostgres.WithPassword("postgres"),
				tcpostgres.BasicWaitStrategies())
		}()
		if err != nil {
			serverErr = fmt.Errorf("no test database: %s is not set and a Postgres container could not be started (%v).\n"+
				"Set %s to a Postgres server this user may CREATE DATABASE on, e.g.\n"+
				"  %s='postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable' make test",
				EnvURL, err, EnvURL, EnvURL)
			return
		}
		container = c
		serverURL, serverErr = c.ConnectionString(ctx, "sslmode=disable")
	})
	return serverURL, serverErr
}

// Main wraps testing.M.Run for packages whose tests use this package: it
// stops the Postgres container, if one was started, after the tests.
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

// Stop terminates the Postgres container, if this process started one.
func Stop() {
	if container != nil {
		_ = testcontainers.TerminateContainer(container)
	}
}

// URL returns the server URL or fails the test with instructions.
func URL(t testing.TB) string {
	t.Helper()
	u, err := server()
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func migrationsHash() string {
	h := sha256.New()
	_ = fs.WalkDir(migrations.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := fs.ReadFile(migrations.FS, p)
		h.Write([]byte(p))
		h.Write(b)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// ensureTemplate creates the migrated template database if it is missing.
// The caller holds the advisory lock.
func ensureTemplate(ctx context.Context, admin *pgx.Conn, base, tmpl string) error {
	var exists bool
	if err := admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, tmpl).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	building := tmpl + "_building"
	if _, err := admin.Exec(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{building}.Sanitize()+` WITH (FORCE)`); err != nil {
		return err
	}
	if _, err := admin.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{building}.Sanitize()); err != nil {
		return err
	}
	u, err := pgutil.WithDatabase(base, building)
	if err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, u)
	if err != nil {
		return err
	}
	_, err = migrate.Up(ctx, pool, nil)
	if err == nil {
		// Ids beyond 2^31 everywhere: any int32 on the id path fails a test.
		_, err = pool.Exec(ctx, `
			ALTER TABLE leads ALTER COLUMN id RESTART WITH 3000000000;
			ALTER TABLE outbox ALTER COLUMN id RESTART WITH 5000000000;
			ALTER TABLE outbox_redrives ALTER COLUMN id RESTART WITH 7000000000`)
	}
	pool.Close()
	if err != nil {
		return fmt.Errorf("migrate template: %w", err)
	}
	_, err = admin.Exec(ctx, `ALTER DATABASE `+pgx.Identifier{building}.Sanitize()+` RENAME TO `+pgx.Identifier{tmpl}.Sanitize())
	return err
}

// Database is one test's own migrated database.
type Database struct {
	Name string
	URL  string
	Pool *pgxpool.Pool
}

// New creates a migrated database for t, with a pool on it, both removed
// when t ends. It fails t (never skips) when no server is available.
func New(t testing.TB) *Database {
	t.Helper()
	return create(t, true)
}

// NewEmpty is New without the schema: a database no migration has touched.
func NewEmpty(t testing.TB) *Database {
	t.Helper()
	return create(t, false)
}

func create(t testing.TB, migrated bool) *Database {
	t.Helper()
	base := URL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("testdb: connect to %s: %v", EnvURL, err)
	}
	defer admin.Close(context.Background())

	tmpl := "outbox_relay_tmpl_" + migrationsHash()
	name := fmt.Sprintf("outbox_relay_t_%d_%d_%d", os.Getpid(), time.Now().UnixNano()%1_000_000, counter.Add(1))

	if _, err := admin.Exec(ctx, `SELECT pg_advisory_lock($1)`, lockKey); err != nil {
		t.Fatalf("testdb: advisory lock: %v", err)
	}
	if migrated {
		err = ensureTemplate(ctx, admin, base, tmpl)
		if err == nil {
			_, err = admin.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()+` TEMPLATE `+pgx.Identifier{tmpl}.Sanitize())
		}
	} else {
		_, err = admin.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize())
	}
	_, _ = admin.Exec(ctx, `SELECT pg_advisory_unlock($1)`, lockKey)
	if err == nil {
		// The database's clock zone differs from the relay's (tests may set
		// time.Local elsewhere) and from UTC: scheduling must not care.
		_, err = admin.Exec(ctx, `ALTER DATABASE `+pgx.Identifier{name}.Sanitize()+` SET timezone TO 'America/Los_Angeles'`)
	}
	if err != nil {
		t.Fatalf("testdb: create database: %v", err)
	}

	u, err := pgutil.WithDatabase(base, name)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, u)
	if err != nil {
		t.Fatalf("testdb: pool: %v", err)
	}
	t.Cleanup(func() {
		pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("testdb: drop %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`); err != nil {
			t.Logf("testdb: drop %s: %v", name, err)
		}
	})
	return &Database{Name: name, URL: u, Pool: pool}
}
