package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/paragon-outbox/outbox-relay/internal/migrate"
)

// runMigrate applies, rolls back or lists the schema migrations:
// `outbox-relay migrate [up|down|status] [flags]` (default up); flags may
// come before or after the action.
func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, fs, err := loadConfig("migrate", args, stderr, func(fs *flag.FlagSet) {
		fs.Usage = func() {
			fmt.Fprintln(fs.Output(), "Usage: outbox-relay migrate [up|down|status] [flags]")
			fmt.Fprintln(fs.Output(), "  up      apply every pending migration (the default)")
			fmt.Fprintln(fs.Output(), "  down    roll back the latest applied migration")
			fmt.Fprintln(fs.Output(), "  status  list the migrations, applied or pending")
			fs.PrintDefaults()
		}
	})
	if err != nil {
		return err
	}
	positional := fs.Args()
	action := "up"
	if len(positional) > 0 {
		action = positional[0]
	}
	if len(positional) > 1 {
		return fmt.Errorf("%w: migrate takes one of up, down, status, got %q", errUsage, positional)
	}
	pool, err := openPool(ctx, cfg, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	log := newLogger(cfg, stderr)
	switch action {
	case "up":
		n, err := migrate.Up(ctx, pool, log)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "migrations applied: %d (schema is current)\n", n)
	case "down":
		if err := migrate.Down(ctx, pool, log); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "rolled back the latest migration")
	case "status":
		st, err := migrate.List(ctx, pool)
		if err != nil {
			return err
		}
		for _, s := range st {
			state := "pending"
			if s.Applied {
				state = "applied"
			}
			fmt.Fprintf(stdout, "%05d  %-8s %s\n", s.Version, state, s.Source)
		}
	default:
		return fmt.Errorf("%w: unknown migrate action %q (up, down, status)", errUsage, action)
	}
	return nil
}
