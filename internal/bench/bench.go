// Package bench measures the relay against the project's performance
// targets, one scenario per target (drain, latency, insert, scale, memory,
// scaleout, fairness, ratelimit), and reports the figures as one table.
//
// What it owns: scenario orchestration, scratch databases (one per scenario,
// uniquely named, dropped afterwards unless kept), synthetic load (leads
// written through SQL like an app, outbox rows generated in bulk), and the
// measurement helpers (percentiles, rate windows, RSS sampling) with their
// tests and Go benchmarks. What it must not touch: the relay's code and SQL.
// It starts relays as the command does (relayrun.New), through the hook
// the command gives it for the endpoint (Options.StartEndpoint) and the
// `outbox-relay relay` subprocess, with the relay's default configuration except where a
// scenario says otherwise, and reads the outbox only to check results.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/backoff"
	"github.com/paragon-outbox/outbox-relay/internal/config"
	"github.com/paragon-outbox/outbox-relay/internal/migrate"
	"github.com/paragon-outbox/outbox-relay/internal/paragonlocal"
	"github.com/paragon-outbox/outbox-relay/internal/pgutil"
	"github.com/paragon-outbox/outbox-relay/internal/relayrun"
)

// Endpoint is a running local Paragon endpoint with a throwaway signing key.
type Endpoint struct {
	Server *paragonlocal.Server
	// Configure points a relay configuration at this endpoint (base URL,
	// project id, signing key).
	Configure func(config.Config) config.Config
	// Env is the same as environment variables, for a relay subprocess.
	Env  []string
	Stop func(context.Context) error
}

// Options configure Run.
type Options struct {
	// Scenarios to run, in this order; empty means all (see Names).
	Scenarios []string
	// Quick sizes every scenario down to a smoke test of a few seconds.
	Quick bool
	// DrainBacklog overrides the drain and memory scenarios' backlog
	// (default 100,000; 5,000 with Quick); e.g. 10,000 drains leads.csv once.
	DrainBacklog int
	// ChurnPerDay is the events per simulated day of the churn scenario;
	// default 50,000 (2,000 with Quick).
	ChurnPerDay int
	// SnapshotDuration is the length of each run of the snapshot scenario;
	// default 60s (6s with Quick).
	SnapshotDuration time.Duration
	// Keep leaves the scratch databases in place (their names are noted).
	Keep bool
	// DBPrefix starts every scratch database's name; default "outbox_relay_bench".
	DBPrefix string
	// CPUProfile, when set, profiles the measured phase of each scenario
	// into this file (one scenario) or into <name>.<scenario><ext>.
	CPUProfile string
	// Config is the relay configuration from the environment and flags;
	// its DatabaseURL names the server the scratch databases are made on.
	Config config.Config
	// LeadsCSV is the content of testdata/leads.csv (or another file of
	// that layout), the source of every lead the scenarios write.
	LeadsCSV []byte
	// Executable is the outbox-relay binary run as `relay` subprocess by the
	// memory scenario (os.Executable of the command).
	Executable string
	// RiverExecutable is the outbox-relay-river binary (module bench/river)
	// the river scenario runs as a subprocess; the scenario fails without it.
	RiverExecutable string
	// Progress receives one line per step; nil discards.
	Progress io.Writer
	// StartEndpoint starts a local Paragon endpoint (payloads discarded).
	StartEndpoint func(faults paragonlocal.Faults) (*Endpoint, error)
	// Log receives the relays' logs; nil discards them.
	Log *slog.Logger
}

type scenarioDef struct {
	name, summary string
	run           func(ctx context.Context, s *scenario) error
}

func defs() []scenarioDef {
	return []scenarioDef{
		{"drain", "one relay drains a backlog of pending leads", runDrain},
		{"latency", "commit-to-endpoint latency at a steady 500 leads/s", runLatency},
		{"insert", "lead insert rate with the outbox trigger vs without", runInsert},
		{"scale", "claim time and drain rate at a small vs a large backlog, beside millions of delivered rows", runScale},
		{"memory", "peak RSS of a relay subprocess draining the drain backlog", runMemory},
		{"scaleout", "drain rate against a 50 ms endpoint by concurrency and by number of relays", runScaleout},
		{"fairness", "small Connected Users behind one user's big backlog", runFairness},
		{"ratelimit", "requests/s at the endpoint under RELAY_RATE_LIMIT", runRateLimit},
		{"churn", "a simulated week at 1,000,000 events/day (scaled down): table and index sizes under delivery, purge and VACUUM", runChurn},
		{"snapshot", "latency at 500 leads/s with and without a REPEATABLE READ snapshot held, per 10 s window", runSnapshot},
		{"ordering", "cost of per-key ordering: drain of 100,000 events unkeyed vs over 10,000 and 10 ordering keys; keyed claim at 10k and 1M pending", runOrdering},
		{"river", "the relay beside River v0.51.2 (bench/river subprocess): drain, Postgres CPU and WAL per event, cold-start latency", runRiver},
	}
}

// Names lists the scenarios in the order they run.
func Names() []string {
	var n []string
	for _, d := range defs() {
		n = append(n, d.name)
	}
	return n
}

// Summaries describes each scenario in one line, for usage text.
func Summaries() string {
	var b strings.Builder
	for _, d := range defs() {
		fmt.Fprintf(&b, "  %-10s %s\n", d.name, d.summary)
	}
	return b.String()
}

// ParseScenarios turns "a,b" into scenario names, checking each; "" or
// "all" is every scenario.
func ParseScenarios(s string) ([]string, error) {
	if s == "" || s == "all" {
		return Names(), nil
	}
	var out []string
	for _, n := range strings.Split(s, ",") {
		n = strings.TrimSpace(n)
		if !slices.Contains(Names(), n) {
			return nil, fmt.Errorf("unknown scenario %q (scenarios: %s)", n, strings.Join(Names(), ", "))
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// Run runs the scenarios and returns their figures. A scenario that fails is
// noted in Report.Errors and the others still run; the error returned joins
// every failure.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if opts.DBPrefix == "" {
		opts.DBPrefix = "outbox_relay_bench"
	}
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	names := opts.Scenarios
	if len(names) == 0 {
		names = Names()
	}
	leadsData, err := ParseLeads(opts.LeadsCSV)
	if err != nil {
		return nil, err
	}
	rep := &Report{Quick: opts.Quick, Relay: relaySettings(opts.Config)}
	rep.Machine, err = machine(ctx, opts.Config.DatabaseURL)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, d := range defs() {
		if !slices.Contains(names, d.name) {
			continue
		}
		if ctx.Err() != nil {
			errs = append(errs, fmt.Errorf("%s: %w", d.name, ctx.Err()))
			break
		}
		s := &scenario{name: d.name, opts: opts, quick: opts.Quick, leads: leadsData, rep: rep, profileFile: profilePath(opts.CPUProfile, d.name, len(names))}
		s.progress("starting")
		t0 := time.Now()
		err := d.run(ctx, s)
		s.cleanup()
		if err != nil {
			s.progress("FAILED after %s: %v", time.Since(t0).Round(time.Millisecond), err)
			rep.Errors = append(rep.Errors, ScenarioError{Scenario: d.name, Error: err.Error()})
			errs = append(errs, fmt.Errorf("%s: %w", d.name, err))
			continue
		}
		s.progress("done in %s", time.Since(t0).Round(time.Millisecond))
	}
	return rep, errors.Join(errs...)
}

func profilePath(base, name string, n int) string {
	if base == "" || n == 1 {
		return base
	}
	ext := ""
	if i := strings.LastIndexByte(base, '.'); i > strings.LastIndexByte(base, '/') {
		base, ext = base[:i], base[i:]
	}
	return base + "." + name + ext
}

// scenario is one scenario's run: its options, results and cleanups.
type scenario struct {
	name        string
	opts        Options
	quick       bool
	leads       *Leads
	rep         *Report
	profileFile string
	cleanups    []func()
}

// pick returns full, or quick in quick mode.
func pick[T any](s *scenario, full, quick T) T {
	if s.quick {
		return quick
	}
	return full
}

func (s *scenario) progress(format string, a ...any) {
	fmt.Fprintf(s.opts.Progress, "bench %-9s %s\n", s.name, fmt.Sprintf(format, a...))
}

func (s *scenario) onCleanup(f func()) { s.cleanups = append(s.cleanups, f) }

func (s *scenario) cleanup() {
	for i := len(s.cleanups) - 1; i >= 0; i-- {
		s.cleanups[i]()
	}
	s.cleanups = nil
}

// add records one figure. target may be nil.
func (s *scenario) add(metric string, value float64, unit string, target *Target) {
	r := Result{Scenario: s.name, Metric: metric, Value: value, Unit: unit, Target: target}
	if target != nil {
		ok := target.Met(value)
		r.Pass = &ok
	}
	s.rep.Results = append(s.rep.Results, r)
}

// note records a line of context printed under the table.
func (s *scenario) note(format string, a ...any) {
	s.rep.Notes = append(s.rep.Notes, Note{Scenario: s.name, Text: fmt.Sprintf(format, a...)})
}

// database is a scratch database with a pool on it.
type database struct {
	Name, URL string
	Pool      *pgxpool.Pool
}

// scratch creates and migrates a uniquely named database on the server,
// dropped when the scenario ends unless Options.Keep.
func (s *scenario) scratch(ctx context.Context, maxConns int32) (*database, error) {
	var b [3]byte
	_, _ = rand.Read(b[:])
	name := fmt.Sprintf("%s_%s_%d_%s", s.opts.DBPrefix, s.name, os.Getpid(), hex.EncodeToString(b[:]))
	u, err := pgutil.Recreate(ctx, s.opts.Config.DatabaseURL, name)
	if err != nil {
		return nil, fmt.Errorf("scratch database: %w", err)
	}
	if s.opts.Keep {
		s.note("scratch database kept: %s", name)
	} else {
		s.onCleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := pgutil.Drop(ctx, s.opts.Config.DatabaseURL, name); err != nil {
				s.progress("could not drop scratch database %s: %v", name, err)
			}
		})
	}
	pc, err := pgxpool.ParseConfig(u)
	if err != nil {
		return nil, err
	}
	pc.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("scratch database: %w", err)
	}
	s.onCleanup(pool.Close)
	if _, err := migrate.Up(ctx, pool, nil); err != nil {
		return nil, err
	}
	return &database{Name: name, URL: u, Pool: pool}, nil
}

// endpoint starts a local Paragon endpoint, stopped when the scenario ends.
func (s *scenario) endpoint(f paragonlocal.Faults) (*Endpoint, error) {
	ep, err := s.opts.StartEndpoint(f)
	if err != nil {
		return nil, err
	}
	s.onCleanup(func() {
		// Every relay has stopped by now. Do not let Shutdown wait the 5 s
		// net/http gives connections that were dialled but never used.
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_ = ep.Stop(ctx)
	})
	return ep, nil
}

// relayConfig is the base configuration pointed at ep and db, named id.
func (s *scenario) relayConfig(ep *Endpoint, db *database, id string) config.Config {
	cfg := ep.Configure(s.opts.Config)
	cfg.DatabaseURL = db.URL
	cfg.RelayID = id
	return cfg
}

// runningRelay is a relay running in this process.
type runningRelay struct {
	cancel context.CancelFunc
	done   chan error
	close  func()
	once   sync.Once
	err    error
}

// startRelay builds a relay from cfg and runs it until stop.
func (s *scenario) startRelay(ctx context.Context, cfg config.Config) (*runningRelay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("relay configuration:\n%w", err)
	}
	r, err := relayrun.New(ctx, cfg, s.opts.Log)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	rr := &runningRelay{cancel: cancel, done: make(chan error, 1), close: r.Close}
	go func() { rr.done <- r.Run(rctx) }()
	return rr, nil
}

// stop shuts the relay down gracefully and waits for it; later calls
// return the same result.
func (r *runningRelay) stop() error {
	r.once.Do(func() {
		r.cancel()
		r.err = <-r.done
		r.close()
	})
	return r.err
}

// startProfile starts the CPU profile of the measured phase, if asked for;
// the returned function stops it.
func (s *scenario) startProfile() (stop func()) {
	if s.profileFile == "" {
		return func() {}
	}
	f, err := os.Create(s.profileFile)
	if err != nil {
		s.progress("cpu profile: %v", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		s.progress("cpu profile: %v", err)
		return func() {}
	}
	var stopped bool
	return func() {
		if stopped {
			return
		}
		stopped = true
		pprof.StopCPUProfile()
		f.Close()
		s.note("CPU profile of the measured phase: %s (go tool pprof -top %s)", s.profileFile, s.profileFile)
	}
}

// sampleDB samples the scratch database's activity every 20 ms; the
// returned function stops and notes the summary under label.
func (s *scenario) sampleDB(ctx context.Context, db *database, label string) (stop func()) {
	a := SampleActivity(ctx, db.Pool, db.Name, 20*time.Millisecond)
	var once sync.Once
	return func() { once.Do(func() { s.note("database activity %s: %s", label, a.Stop()) }) }
}

// loadLeads writes n leads with COPY in chunks of chunk rows (leads.csv is
// 10,000), through the trigger. owner, if non-nil, sets each lead's owner_id
// (i counts from 0 over all n). It returns the rows loaded.
func (s *scenario) loadLeads(ctx context.Context, pool *pgxpool.Pool, n, chunk int, owner func(i int) string) (int64, error) {
	var total int64
	var full []byte // the CSV of a whole chunk, reused when owner is nil
	for done := 0; done < n; {
		k := min(chunk, n-done)
		var data []byte
		switch {
		case owner != nil:
			base := done
			data = s.leads.CSV(k, func(i int) string { return owner(base + i) })
		case k == chunk:
			if full == nil {
				full = s.leads.CSV(k, nil)
			}
			data = full
		default:
			data = s.leads.CSV(k, nil)
		}
		got, err := copyCSV(ctx, pool, "leads", data)
		if err != nil {
			return total, err
		}
		total += got
		done += k
	}
	return total, nil
}

// vacuum runs VACUUM ANALYZE on the outbox (and leads), so every scenario
// starts from fresh statistics and a clean visibility map.
func vacuum(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := pool.Exec(ctx, `VACUUM ANALYZE outbox, leads`)
	return err
}

// waitDelivered waits until the endpoint has accepted n events and no
// outbox row is pending or in flight any more (so the relay has recorded
// them), or timeout passes. It polls the database only once the endpoint
// has seen n events (every second before that, in case some went dead), so
// the wait itself costs the database next to nothing.
func waitDelivered(ctx context.Context, ep *Endpoint, pool *pgxpool.Pool, n int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	reached := make(chan error, 1)
	go func() { reached <- ep.Server.WaitForCount(ctx, n) }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("timed out after %s: endpoint accepted %d of %d events", timeout, ep.Server.Count(), n)
		case err := <-reached:
			if err != nil {
				continue // ctx ended: reported by the ctx.Done case
			}
			for {
				left, err := unsettled(ctx, pool)
				if err != nil || left == 0 {
					return err
				}
				if !backoff.Sleep(ctx, 5*time.Millisecond) {
					return fmt.Errorf("timed out after %s: %d events still pending or in flight", timeout, left)
				}
			}
		case <-tick.C:
			if left, err := unsettled(ctx, pool); err == nil && left == 0 {
				return nil
			}
		}
	}
}

// unsettled counts pending and in-flight rows; each count is served by a
// partial index, so it stays cheap when most rows are delivered.
func unsettled(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	var n int64
	err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM outbox WHERE status = 'pending') + (SELECT count(*) FROM outbox WHERE status = 'in_flight')`).Scan(&n)
	return n, err
}

// outcomeCounts counts delivered and dead rows.
func outcomeCounts(ctx context.Context, pool *pgxpool.Pool) (delivered, dead int64, err error) {
	err = pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'delivered'), count(*) FILTER (WHERE status = 'dead') FROM outbox`).Scan(&delivered, &dead)
	return delivered, dead, err
}

// duplicates counts events the endpoint accepted more than once.
func duplicates(ep *Endpoint) int {
	d := 0
	for _, c := range ep.Server.CountByEventID() {
		d += max(0, c-1)
	}
	return d
}

func relaySettings(c config.Config) RelaySettings {
	return RelaySettings{Concurrency: c.Concurrency, BatchSize: c.BatchSize, PollInterval: c.PollInterval.String(), RateLimit: c.RateLimit}
}

// machine describes where the bench runs.
func machine(ctx context.Context, url string) (Machine, error) {
	m := Machine{
		Date: time.Now().UTC().Format(time.RFC3339), CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
		GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH, CPUModel: cpuModel(),
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return m, fmt.Errorf("DATABASE_URL: %w", err)
	}
	defer pool.Close()
	if err := pool.QueryRow(ctx, `SELECT current_setting('server_version'), current_setting('shared_buffers'), current_setting('synchronous_commit'), current_setting('fsync'), current_setting('autovacuum')`).
		Scan(&m.Postgres, &m.SharedBuffers, &m.SynchronousCommit, &m.Fsync, &m.Autovacuum); err != nil {
		return m, fmt.Errorf("cannot reach the database at DATABASE_URL: %w", err)
	}
	return m, nil
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
