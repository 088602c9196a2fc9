package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/config"
	"github.com/paragon-outbox/outbox-relay/internal/migrate"
	"github.com/paragon-outbox/outbox-relay/internal/pgutil"
)

// loadConfig reads the environment, then parses flags over it: the flags of
// the settings the command uses (config.CommandGroups) and its own, which
// extra may register. Flags of other settings still work, with a warning.
func loadConfig(name string, args []string, stderr io.Writer, extra func(fs *flag.FlagSet)) (config.Config, *flag.FlagSet, error) {
	cfg, envErr := config.FromEnvFor(name, os.Getenv)
	fs := flag.NewFlagSet("outbox-relay "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	flags := cfg.CommandFlags(name, fs)
	if extra != nil {
		extra(fs)
	}
	warnings, err := flags.Parse(args)
	for _, w := range warnings {
		fmt.Fprintf(stderr, "outbox-relay %s: warning: %s\n", name, w)
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, fs, err
		}
		return cfg, fs, fmt.Errorf("%w: %v", errUsage, err)
	}
	if envErr != nil {
		return cfg, fs, fmt.Errorf("configuration: %w", envErr)
	}
	return cfg, fs, nil
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(strings.ToUpper(cfg.LogLevel)))
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// openPool connects to DATABASE_URL and checks the connection, with an error
// that names the variable and never prints a password. A permanent error
// (no such database or role, wrong password) says what to do about it.
func openPool(ctx context.Context, cfg config.Config, maxConns int32) (*pgxpool.Pool, error) {
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
		return nil, fmt.Errorf("DATABASE_URL (%s): %w", config.RedactURL(cfg.DatabaseURL), err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("cannot reach the database at DATABASE_URL (%s): %w", config.RedactURL(cfg.DatabaseURL), pgutil.Explain(err))
	}
	return pool, nil
}

// openPoolWaiting opens the relay's pool (writable nodes only, lock_timeout
// set), waiting for cfg.StartupTimeout, with backoff, while the database is
// unreachable or restarting: a sidecar often starts before its database, or
// during a database restart or failover. A permanent error (no such
// database or role, wrong password) returns at once: waiting cannot fix it.
func openPoolWaiting(ctx context.Context, cfg config.Config, maxConns int32, log *slog.Logger) (*pgxpool.Pool, error) {
	deadline := time.Now().Add(cfg.StartupTimeout)
	delay := 250 * time.Millisecond
	o := pgutil.PoolOptions{MaxConns: maxConns, NoJIT: true, Writable: true, LockTimeout: cfg.LockTimeout}
	for attempt := 1; ; attempt++ {
		pool, err := openPoolWith(ctx, cfg, o)
		if err == nil || cfg.ValidateDatabase() != nil || pgutil.IsPermanent(err) || time.Now().Add(delay).After(deadline) || ctx.Err() != nil {
			return pool, err
		}
		log.Warn("database not reachable yet; retrying", slog.Int("attempt", attempt), slog.Duration("retry_in", delay), slog.Any("error", err))
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// openMigratedPool is openPool for commands that read or change the outbox:
// an unmigrated database gets "run outbox-relay migrate up" rather than
// "relation does not exist".
func openMigratedPool(ctx context.Context, cfg config.Config, maxConns int32) (*pgxpool.Pool, error) {
	pool, err := openPool(ctx, cfg, maxConns)
	if err != nil {
		return nil, err
	}
	if err := migrate.Check(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}
