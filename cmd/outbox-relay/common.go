package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/config"
	"github.com/paragon-outbox/outbox-relay/internal/migrate"
	"github.com/paragon-outbox/outbox-relay/internal/relayrun"
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
	warnings, err := parseInterspersed(flags, fs, args)
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

// parseInterspersed parses args with flags, letting flags follow the
// arguments (`migrate up -database-url …`, `inspect 8 -json`): each
// argument that is not a flag is set aside and parsing goes on after it,
// until "--" (everything after it is an argument). Afterwards fs.Args()
// holds every argument, in order. Warnings are deduplicated.
func parseInterspersed(flags *config.FlagParser, fs *flag.FlagSet, args []string) ([]string, error) {
	var warnings, positional []string
	rest := args
	for {
		w, err := flags.Parse(rest)
		for _, x := range w {
			if !slices.Contains(warnings, x) {
				warnings = append(warnings, x)
			}
		}
		if err != nil {
			return warnings, err
		}
		left := fs.Args()
		consumed := len(rest) - len(left)
		if len(left) == 0 || (consumed > 0 && rest[consumed-1] == "--") {
			positional = append(positional, left...)
			break
		}
		positional = append(positional, left[0])
		rest = left[1:]
	}
	return warnings, fs.Parse(append([]string{"--"}, positional...))
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
// that names the variable and never prints a password; a permanent error
// says what to do about it (relayrun.OpenPool).
func openPool(ctx context.Context, cfg config.Config, maxConns int32) (*pgxpool.Pool, error) {
	return relayrun.OpenPool(ctx, cfg, maxConns)
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
		if errors.Is(err, migrate.ErrPending) {
			return nil, fmt.Errorf("%w; database %s (from DATABASE_URL or -database-url: is it the one you meant?)", err, describeDatabase(pool))
		}
		return nil, err
	}
	return pool, nil
}

// describeDatabase names the database pool connects to as host:port/dbname
// (never user or password), for errors about that database.
func describeDatabase(pool *pgxpool.Pool) string {
	c := pool.Config().ConnConfig
	return fmt.Sprintf("%s:%d/%s", c.Host, c.Port, c.Database)
}

// noArgs refuses arguments left after the flags of a command that takes
// none (`status foo`), as a usage error.
func noArgs(name string, fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: %s takes no arguments, got %q (settings are flags, e.g. -database-url)", errUsage, name, fs.Args())
	}
	return nil
}
