package main

import (
	"context"
	"fmt"
	"io"

	"github.com/paragon-outbox/outbox-relay/internal/migrate"
)

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, fs, err := loadConfig("migrate", args, stderr, nil)
	if err != nil {
		return err
	}
	action := "up"
	if fs.NArg() > 0 {
		action = fs.Arg(0)
	}
	if fs.NArg() > 1 {
		return fmt.Errorf("%w: migrate takes one of up, down, status", errUsage)
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
