package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/bench"
	"github.com/paragon-outbox/outbox-relay/internal/paragonlocal"
)

// runBench measures the project's performance targets, one scenario each
// (internal/bench), against the local Paragon endpoint, every scenario in
// its own scratch database on the DATABASE_URL server, and prints one
// results table (or JSON). Relay settings come from the environment and
// flags as for `outbox-relay relay`, at their defaults unless set.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		leadsPath string
		scenarios string
		dbPrefix  string
		quick     bool
		keep      bool
		asJSON    bool
		cpuProf   string
		backlog   int
		riverBin  string
		snapDur   time.Duration
		churnDay  int
	)
	cfg, fs, err := loadConfig("bench", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&scenarios, "scenario", "all", "scenarios to run, comma-separated: "+strings.Join(bench.Names(), ","))
		fs.BoolVar(&quick, "quick", false, "sizes for a smoke test (seconds per scenario, not meaningful figures)")
		fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
		fs.StringVar(&leadsPath, "leads", "testdata/leads.csv", "CSV of leads to write (leads.csv layout)")
		fs.StringVar(&dbPrefix, "db", "outbox_relay_bench", "name prefix of the scratch databases made on the DATABASE_URL server")
		fs.BoolVar(&keep, "keep", false, "keep the scratch databases afterwards")
		fs.IntVar(&backlog, "drain-backlog", 0, "backlog of the drain and memory scenarios (default 100000; 10000 = leads.csv once)")
		fs.StringVar(&riverBin, "river-bin", "", "the River bench binary for -scenario river (default: outbox-relay-river beside this executable; `make bench` builds it)")
		fs.IntVar(&churnDay, "churn-per-day", 0, "events per simulated day of the churn scenario (default 50000; 1000000 is the real rate)")
		fs.DurationVar(&snapDur, "snapshot-duration", 0, "length of each run of the snapshot scenario (default 60s; the issue's target run is 10m)")
		fs.StringVar(&cpuProf, "cpuprofile", "", "write a CPU profile of each scenario's measured phase to this file (several scenarios: file.<scenario>.ext)")
		fs.Usage = func() {
			fmt.Fprintf(fs.Output(), "Usage: outbox-relay bench [-quick] [-scenario name[,name]] [-json] [flags]\n\nScenarios:\n%s\nFlags:\n", bench.Summaries())
			fs.PrintDefaults()
		}
	})
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	names, err := bench.ParseScenarios(scenarios)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if err := cfg.ValidateDatabase(); err != nil {
		return err
	}
	csv, err := os.ReadFile(leadsPath)
	if err != nil {
		return fmt.Errorf("leads file: %w (run from the repository root, or pass -leads)", err)
	}
	exe, err := os.Executable()
	if err != nil {
		exe = ""
	}
	if riverBin == "" && exe != "" {
		riverBin = filepath.Join(filepath.Dir(exe), "outbox-relay-river")
	}
	// Relay logs are discarded unless LOG_LEVEL asks for them.
	logw := io.Discard
	if os.Getenv("LOG_LEVEL") != "" {
		logw = stderr
	}
	log := newLogger(cfg, logw)

	rep, runErr := bench.Run(ctx, bench.Options{
		Scenarios:        names,
		Quick:            quick,
		DrainBacklog:     backlog,
		Keep:             keep,
		DBPrefix:         dbPrefix,
		CPUProfile:       cpuProf,
		Config:           cfg,
		LeadsCSV:         csv,
		Executable:       exe,
		RiverExecutable:  riverBin,
		SnapshotDuration: snapDur,
		ChurnPerDay:      churnDay,
		Progress:         stderr,
		StartEndpoint: func(f paragonlocal.Faults) (*bench.Endpoint, error) {
			lp, err := startLocalParagon("bench-project", f, true)
			if err != nil {
				return nil, err
			}
			return &bench.Endpoint{
				Server:    lp.server,
				Configure: lp.relayConfig,
				Env: []string{
					"PARAGON_PROJECT_ID=" + lp.project, "PARAGON_SIGNING_KEY=" + lp.keyPEM,
					"PARAGON_SIGNING_KEY_FILE=", "PARAGON_BASE_URL=" + lp.baseURL,
				},
				Stop: lp.stop,
			}, nil
		},
		Log: log,
	})
	if rep == nil {
		return runErr
	}
	if asJSON {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteText(stdout)
	}
	if runErr != nil {
		return runErr
	}
	return err
}
