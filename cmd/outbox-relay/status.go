package main

import (
	"context"
	"flag"
	"io"

	"github.com/paragon-outbox/outbox-relay/internal/status"
)

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var asJSON bool
	var top int
	cfg, fs, err := loadConfig("status", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print JSON for scripts")
		fs.IntVar(&top, "top", 10, "rows in each list")
	})
	if err != nil {
		return err
	}
	if err := noArgs("status", fs); err != nil {
		return err
	}
	pool, err := openMigratedPool(ctx, cfg, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	rep, err := status.Collect(ctx, pool, top)
	if err != nil {
		return err
	}
	if asJSON {
		return rep.WriteJSON(stdout)
	}
	return rep.WriteText(stdout)
}
