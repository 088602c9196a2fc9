package relayrun

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/backoff"
	"github.com/paragon-outbox/outbox-relay/internal/config"
	"github.com/paragon-outbox/outbox-relay/internal/pgutil"
)

// OpenPool connects to cfg.DatabaseURL with at most maxConns connections
// (0: pgx's default), JIT off, and checks the connection within 10 s, with
// an error that names DATABASE_URL and never prints a password. A permanent
// error (no such database or role, wrong password) says what to do about it.
func OpenPool(ctx context.Context, cfg config.Config, maxConns int32) (*pgxpool.Pool, error) {
	return openPoolWith(ctx, cfg, pgutil.PoolOptions{MaxConns: maxConns, NoJIT: true})
}

func openPoolWith(ctx context.Context, cfg config.Config, o pgutil.PoolOptions) (*pgxpool.Pool, error) {
	if err := cfg.ValidateDatabase(); err != nil {
		return nil, err
	}
	if _, err := pgxpool.ParseConfig(cfg.DatabaseURL); err != nil {
		return nil, config.DatabaseURLError(cfg.DatabaseURL, err)
	}
	// NoJIT: the relay's statements are short and run thousands of times a
	// second; with a large backlog the planner's row estimates cross
	// jit_above_cost and JIT compilation costs more than the statement (40 ms
	// of a 62 ms claim at 1M pending, docs/BENCHMARKS.md). A DATABASE_URL
	// that sets jit itself wins.
	pool, err := pgutil.NewPool(ctx, cfg.DatabaseURL, o)
	if err != nil {
		return nil, config.RedactError(fmt.Errorf("DATABASE_URL (%s): %w", config.RedactURL(cfg.DatabaseURL), err), cfg.DatabaseURL)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		// The driver's message can quote fragments of the password (an
		// unescaped '@' in it makes pgx read the rest as the host):
		// RedactError masks them.
		return nil, config.RedactError(fmt.Errorf("cannot reach the database at DATABASE_URL (%s): %w", config.RedactURL(cfg.DatabaseURL), pgutil.Explain(err)), cfg.DatabaseURL)
	}
	return pool, nil
}

// OpenPoolWaiting opens the relay's pool (writable nodes only, lock_timeout
// set), waiting for cfg.StartupTimeout, with backoff (250 ms doubling to
// 5 s, jittered), while the database is unreachable or restarting: a
// sidecar often starts before its database, or during a database restart
// or failover. A DATABASE_URL that is wrong, a permanent error (no such
// database or role, wrong password) or a cancelled ctx returns at once:
// waiting cannot fix them.
func OpenPoolWaiting(ctx context.Context, cfg config.Config, maxConns int32, log *slog.Logger) (*pgxpool.Pool, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	deadline := time.Now().Add(cfg.StartupTimeout)
	// NoSeqScan: a generic plan cached while the outbox is empty must not
	// read it sequentially forever after (sqlfiles.SetSeqScanOff).
	o := pgutil.PoolOptions{MaxConns: maxConns, NoJIT: true, NoSeqScan: true, Writable: true, LockTimeout: cfg.LockTimeout}
	for attempt := int32(1); ; attempt++ {
		pool, err := openPoolWith(ctx, cfg, o)
		delay := backoff.Jittered(attempt, 250*time.Millisecond, 5*time.Second)
		if err == nil || cfg.ValidateDatabase() != nil || pgutil.IsPermanent(err) || time.Now().Add(delay).After(deadline) || ctx.Err() != nil {
			return pool, err
		}
		log.Warn("database not reachable yet; retrying", slog.Int("attempt", int(attempt)), slog.Duration("retry_in", delay), slog.Any("error", err))
		if !backoff.Sleep(ctx, delay) {
			return nil, err
		}
	}
}
