package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/config"
	"github.com/paragon-outbox/outbox-relay/internal/leads"
	"github.com/paragon-outbox/outbox-relay/internal/migrate"
	"github.com/paragon-outbox/outbox-relay/internal/paragonlocal"
	"github.com/paragon-outbox/outbox-relay/internal/pgutil"
)

// runBench measures how fast one relay drains a backlog of real leads into
// the local Paragon endpoint. It works in its own scratch database
// (outbox_relay_bench) on the server of DATABASE_URL, recreated each run.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		leadsPath string
		copies    int
		dbName    string
		latency   time.Duration
		keep      bool
		cpuProf   string
	)
	cfg, _, err := loadConfig("bench", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&leadsPath, "leads", "testdata/leads.csv", "CSV of leads to load (leads.csv layout)")
		fs.IntVar(&copies, "copies", 1, "load the CSV this many times (backlog = rows x copies)")
		fs.StringVar(&dbName, "db", "outbox_relay_bench", "scratch database to (re)create on the DATABASE_URL server")
		fs.DurationVar(&latency, "latency", 0, "latency the local Paragon endpoint adds to every request")
		fs.BoolVar(&keep, "keep", false, "keep the scratch database afterwards")
		fs.StringVar(&cpuProf, "cpuprofile", "", "write a CPU profile of the drain to this file (go tool pprof)")
	})
	if err != nil {
		return err
	}
	csv, err := os.ReadFile(leadsPath)
	if err != nil {
		return fmt.Errorf("leads file: %w (run from the repository root, or pass -leads)", err)
	}
	if os.Getenv("RELAY_POLL_INTERVAL") == "" {
		cfg.PollInterval = 10 * time.Millisecond
	}
	scratch, err := pgutil.Recreate(ctx, cfg.DatabaseURL, dbName)
	if err != nil {
		return fmt.Errorf("bench database: %w", err)
	}
	if !keep {
		defer pgutil.Drop(context.Background(), cfg.DatabaseURL, dbName)
	}
	cfg.DatabaseURL = scratch
	pool, err := openPool(ctx, cfg, 4)
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := migrate.Up(ctx, pool, nil); err != nil {
		return err
	}
	loadStart := time.Now()
	var total int64
	for range copies {
		n, err := leads.CopyCSV(ctx, pool, bytes.NewReader(csv))
		if err != nil {
			return err
		}
		total += n
	}
	loadTime := time.Since(loadStart)
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE outbox`); err != nil {
		return err
	}

	lp, err := startLocalParagon("bench-project", paragonlocal.Faults{Latency: latency}, true)
	if err != nil {
		return err
	}
	defer lp.stop(context.Background())
	rcfg := lp.relayConfig(cfg)
	if err := rcfg.Validate(); err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	log := newLogger(rcfg, io.Discard)
	if os.Getenv("LOG_LEVEL") != "" {
		log = newLogger(rcfg, stderr)
	}
	r, rpool, err := setupRelay(ctx, rcfg, log, nil)
	if err != nil {
		return err
	}
	defer rpool.Close()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	if cpuProf != "" {
		pf, err := os.Create(cpuProf)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	go func() { done <- r.Run(runCtx) }()
	waitErr := waitSettled(ctx, pool, 0, total, 30*time.Minute)
	drain := time.Since(start)
	stop()
	if err := <-done; err != nil {
		return err
	}
	if waitErr != nil {
		return waitErr
	}
	var delivered, dead int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'delivered'), count(*) FILTER (WHERE status = 'dead') FROM outbox`).Scan(&delivered, &dead); err != nil {
		return err
	}
	dups := 0
	for _, c := range lp.server.CountByEventID() {
		if c > 1 {
			dups += c - 1
		}
	}
	fmt.Fprintf(stdout, "outbox-relay bench: drain a backlog with one relay (%d CPUs, %s)\n", runtime.NumCPU(), runtime.Version())
	fmt.Fprintf(stdout, "  leads loaded     %d (COPY with trigger, %s, %.0f leads/s)\n", total, loadTime.Round(time.Millisecond), float64(total)/loadTime.Seconds())
	fmt.Fprintf(stdout, "  concurrency      %d, batch %d, endpoint latency %s\n", rcfg.Concurrency, rcfg.BatchSize, latency)
	fmt.Fprintf(stdout, "  delivered        %d (dead %d, duplicates at endpoint %d)\n", delivered, dead, dups)
	fmt.Fprintf(stdout, "  drain time       %s\n", drain.Round(time.Millisecond))
	fmt.Fprintf(stdout, "  throughput       %.0f events/s\n", float64(delivered)/drain.Seconds())
	if delivered != total {
		return fmt.Errorf("delivered %d of %d", delivered, total)
	}
	_ = config.Config{}
	return nil
}
