// Package migrate applies the embedded goose migrations (package migrations)
// to a Postgres database. It owns schema versioning only; it never touches
// outbox rows.
//
// Several relay replicas commonly run `outbox-relay migrate up` at the same
// moment (every sidecar starts with it). goose's Postgres session locker
// (pg_advisory_lock) serialises them: the first applies the migrations, the
// others wait and then find nothing to do.
package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/paragon-outbox/outbox-relay/internal/dbsqlc"
	"github.com/paragon-outbox/outbox-relay/migrations"
)

// newProvider opens a goose provider on a database/sql handle built from pool.
func newProvider(pool *pgxpool.Pool, log *slog.Logger) (*goose.Provider, *sql.DB, error) {
	db := stdlib.OpenDBFromPool(pool)
	locker, err := lock.NewPostgresSessionLocker(
		// Retry the advisory lock every 2 s for up to 5 minutes: a slow
		// migration on another replica must not fail this one.
		lock.WithLockTimeout(2, 150),
	)
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("migrate: session locker: %w", err)
	}
	opts := []goose.ProviderOption{goose.WithSessionLocker(locker)}
	if log != nil {
		opts = append(opts, goose.WithSlog(log.With(slog.String("component", "migrate"))))
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS, opts...)
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("migrate: %w", err)
	}
	return p, db, nil
}

// Up applies every pending migration and returns how many it applied (0 when
// the schema is current). Safe to run from many processes at once.
func Up(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) (int, error) {
	p, db, err := newProvider(pool, log)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	res, err := p.Up(ctx)
	if err != nil {
		return len(res), fmt.Errorf("migrate up: %w", err)
	}
	return len(res), nil
}

// Down rolls back the most recent migration.
func Down(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	p, db, err := newProvider(pool, log)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := p.Down(ctx); err != nil {
		return fmt.Errorf("migrate down: %w", err)
	}
	return nil
}

// DownTo rolls back every migration newer than version.
func DownTo(ctx context.Context, pool *pgxpool.Pool, version int64, log *slog.Logger) error {
	p, db, err := newProvider(pool, log)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := p.DownTo(ctx, version); err != nil {
		return fmt.Errorf("migrate down to %d: %w", version, err)
	}
	return nil
}

// Status describes each migration: its version, file and whether it is applied.
type Status struct {
	Version int64
	Source  string
	Applied bool
}

// List returns the status of every embedded migration, oldest first.
func List(ctx context.Context, pool *pgxpool.Pool) ([]Status, error) {
	p, db, err := newProvider(pool, nil)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	st, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate status: %w", err)
	}
	out := make([]Status, 0, len(st))
	for _, s := range st {
		out = append(out, Status{Version: s.Source.Version, Source: s.Source.Path, Applied: s.State == goose.StateApplied})
	}
	return out, nil
}

// ErrPending reports that the database lacks migrations this binary carries.
var ErrPending = errors.New("database schema is behind this binary: run `outbox-relay migrate up`")

// Versions returns the versions of the embedded migrations, ascending.
func Versions() ([]int64, error) {
	entries, err := fs.ReadDir(migrations.FS, ".")
	if err != nil {
		return nil, err
	}
	var vs []int64
	for _, e := range entries {
		prefix, _, ok := strings.Cut(e.Name(), "_")
		if !ok || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		v, err := strconv.ParseInt(prefix, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("migration %s: version prefix: %w", e.Name(), err)
		}
		vs = append(vs, v)
	}
	slices.Sort(vs)
	return vs, nil
}

// Check returns ErrPending (wrapped, with the versions) when any embedded
// migration is not applied. It only reads goose's version table, so a role
// without CREATE privilege (the relay's) can run it, and it never creates
// that table on an unmigrated database.
func Check(ctx context.Context, pool *pgxpool.Pool) error {
	want, err := Versions()
	if err != nil {
		return err
	}
	applied := map[int64]bool{}
	q := dbsqlc.New(pool)
	exists, err := q.SchemaVersionTable(ctx)
	if err != nil {
		return fmt.Errorf("check schema version: %w", err)
	}
	if exists {
		rows, err := q.SchemaVersions(ctx)
		if err != nil {
			return fmt.Errorf("check schema version: %w", err)
		}
		for _, r := range rows {
			applied[r.VersionID] = r.IsApplied
		}
	}
	var missing []int64
	for _, v := range want {
		if !applied[v] {
			missing = append(missing, v)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w (missing versions %v)", ErrPending, missing)
	}
	return nil
}
