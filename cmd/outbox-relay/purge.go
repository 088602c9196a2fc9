package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/operator"
)

// runPurge deletes delivered events delivered more than -delivered-age ago
// and dead and skipped events written more than -dead-age ago, with their attempts and
// re-drives, in batches. Pending and in-flight events are never deleted.
func runPurge(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		deliveredAge, deadAge time.Duration
		batch                 int
		dryRun                bool
	)
	cfg, fs, err := loadConfig("purge", args, stderr, func(fs *flag.FlagSet) {
		fs.DurationVar(&deliveredAge, "delivered-age", 0, "delete delivered events delivered longer ago than this (default: -retain-delivered)")
		fs.DurationVar(&deadAge, "dead-age", 0, "delete dead and skipped events written longer ago than this (default: -retain-dead)")
		fs.IntVar(&batch, "batch", operator.DefaultPurgeBatch, "rows deleted per statement")
		fs.BoolVar(&dryRun, "dry-run", false, "only count what would be deleted")
	})
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	if deliveredAge < 0 || deadAge < 0 {
		return fmt.Errorf("%w: -delivered-age and -dead-age must be positive durations (e.g. 168h)", errUsage)
	}
	// Without flags, the relay's own retention applies; a retention of 0
	// (RELAY_RETAIN_*=0) keeps those events.
	const forever = 100 * 365 * 24 * time.Hour
	if deliveredAge == 0 {
		deliveredAge = cfg.RetainDelivered
	}
	if deadAge == 0 {
		deadAge = cfg.RetainDead
	}
	if deliveredAge == 0 {
		deliveredAge = forever
	}
	if deadAge == 0 {
		deadAge = forever
	}
	if batch < 1 || batch > 100_000 {
		return fmt.Errorf("%w: -batch=%d is out of range 1..100000", errUsage, batch)
	}
	pool, err := openMigratedPool(ctx, cfg, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	if dryRun {
		delivered, dead, err := operator.Purgeable(ctx, pool, deliveredAge, deadAge)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Dry run: would delete %d events: %d delivered more than %s ago, %d dead or skipped written more than %s ago (with their attempts and re-drives). Nothing was changed.\n",
			delivered+dead, delivered, deliveredAge, dead, deadAge)
		return nil
	}
	start := time.Now()
	n, err := operator.Purge(ctx, pool, deliveredAge, deadAge, batch)
	if err != nil {
		if n > 0 {
			fmt.Fprintf(stdout, "Deleted %d events before the error.\n", n)
		}
		return err
	}
	fmt.Fprintf(stdout, "Deleted %d events (delivered more than %s ago, dead or skipped written more than %s ago) with their attempts and re-drives, in batches of %d, in %s.\n",
		n, deliveredAge, deadAge, batch, time.Since(start).Round(time.Millisecond))
	return nil
}
