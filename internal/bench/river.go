package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/backoff"
	"github.com/paragon-outbox/outbox-relay/internal/paragonlocal"
)

// River comparison sizes (docs/BENCHMARKS.md, issue 9).
const (
	riverUsers = 200 // Connected Users of the latency load
	riverRate  = 500 // leads/s of the latency load
)

// runRiver: the relay and River v0.51.2 (bench/river, run as the
// outbox-relay-river subprocess) doing the same job, side by side in one
// run, each in its own scratch database against its own local endpoint:
//
//   - drain: 20,000 pending leads (leads.csv twice, 200 Connected Users),
//     then the relay (default settings) or River (MaxWorkers 2,000,
//     FetchCooldown 10 ms) delivers them; events/s from start to the last
//     recorded outcome, Postgres CPU per event (PGMeter: the database's
//     backends by pid, plus the server's WAL writer/checkpointer/bgwriter)
//     and WAL bytes per event;
//   - latency from a cold start: the relay (or River with MaxWorkers 200,
//     FetchCooldown 10 ms, FetchPollInterval 50 ms) starts, and 2 s later a
//     writer inserts 500 leads/s from 200 Connected Users for 10 s, one lead
//     per transaction; latency = endpoint receipt - the lead's created_at
//     (now() of the inserting transaction: its start).
//
// The outbox (or river_job) is VACUUM ANALYZEd after each load: this server
// runs with autovacuum off.
func runRiver(ctx context.Context, s *scenario) error {
	if s.opts.RiverExecutable == "" {
		return errors.New("no River bench binary: build it with `make bench` (bin/outbox-relay-river) or pass -river-bin")
	}
	if _, err := os.Stat(s.opts.RiverExecutable); err != nil {
		return fmt.Errorf("River bench binary: %w (build it with `make bench`, or `go build -C bench/river -o ../../bin/outbox-relay-river .`)", err)
	}
	n := pick(s, 20_000, 2_000)
	dur := pick(s, 10*time.Second, 2*time.Second)
	leadsFile, err := os.CreateTemp("", "outbox-relay-bench-leads-*.csv")
	if err != nil {
		return err
	}
	s.onCleanup(func() { os.Remove(leadsFile.Name()) })
	if _, err := leadsFile.Write(s.opts.LeadsCSV); err != nil {
		return err
	}
	leadsFile.Close()
	s.note("autovacuum=%s on this server: the outbox and river_job are VACUUM ANALYZEd after each load", s.rep.Machine.Autovacuum)
	s.note("load average at the start: %s", loadAvg())

	// Drain, relay then River.
	relayDrain, err := s.relayDrain(ctx, n)
	if err != nil {
		return fmt.Errorf("relay drain: %w", err)
	}
	riverDrain, err := s.riverPhase(ctx, "drain", leadsFile.Name(), n, []string{"-n", strconv.Itoa(n)})
	if err != nil {
		return fmt.Errorf("River drain: %w", err)
	}
	// Latency from a cold start, relay then River.
	relayLat, err := s.relayColdLatency(ctx, dur)
	if err != nil {
		return fmt.Errorf("relay latency: %w", err)
	}
	total := int(dur.Seconds() * riverRate)
	riverLat, err := s.riverPhase(ctx, "latency", leadsFile.Name(), total, []string{"-duration", dur.String(), "-rate", strconv.Itoa(riverRate), "-users", strconv.Itoa(riverUsers)})
	if err != nil {
		return fmt.Errorf("River latency: %w", err)
	}

	per := func(d time.Duration, n int) float64 { return float64(d) / float64(time.Microsecond) / float64(n) }
	rd, vd := relayDrain.usage, riverDrain.usage
	s.add("relay drain", Rate(int64(n), rd.Elapsed), "events/s", nil)
	s.add("River drain", Rate(int64(n), vd.Elapsed), "events/s", nil)
	s.add("drain ratio relay/River", Rate(int64(n), rd.Elapsed)/Rate(int64(n), vd.Elapsed), "x", AtLeast(2.5))
	rpg, vpg := per(rd.Backends+rd.Aux, n), per(vd.Backends+vd.Aux, n)
	s.add("relay Postgres CPU", rpg, "us/event", nil)
	s.add("River Postgres CPU", vpg, "us/event", nil)
	s.add("PG CPU ratio relay/River", rpg/vpg, "x", AtMost(1.0/3))
	s.add("relay WAL", float64(rd.WAL)/float64(n), "B/event", nil)
	s.add("River WAL", float64(vd.WAL)/float64(n), "B/event", nil)
	s.add("WAL ratio relay/River", float64(rd.WAL)/float64(vd.WAL), "x", AtMost(0.5))
	s.add("relay p50 cold", ms(relayLat.lat.P50), "ms", nil)
	s.add("relay p99 cold", ms(relayLat.lat.P99), "ms", nil)
	s.add("River p50 cold", ms(riverLat.lat.P50), "ms", nil)
	s.add("River p99 cold", ms(riverLat.lat.P99), "ms", nil)
	s.add("p99 ratio relay/River", float64(relayLat.lat.P99)/float64(riverLat.lat.P99), "x", AtMost(0.25))
	// Where the CPU goes per event during the drains. The endpoint runs in
	// this process in both; during River's drain this process does nothing
	// else, so its CPU there is the endpoint's.
	ep := per(vd.Self, n)
	s.add("endpoint CPU", ep, "us/event", nil)
	s.add("relay CPU (Go)", per(rd.Self, n)-ep, "us/event", nil)
	s.add("River CPU (Go)", per(riverDrain.childCPU, n), "us/event", nil)
	for _, x := range []struct {
		who string
		u   PGUsage
	}{{"relay", rd}, {"River", vd}} {
		s.note("%s drain: %d events in %s; database backends %s (%d pids) + WAL writer/checkpointer/bgwriter %s; whole server %s (includes other sessions on a shared server); WAL %d bytes (server-wide LSN difference)",
			x.who, n, x.u.Elapsed.Round(time.Millisecond), x.u.Backends, x.u.Pids, x.u.Aux, x.u.Server, x.u.WAL)
	}
	s.note("cold-start latency (endpoint receipt - transaction start), %d events each, load starting 2 s after start: relay p50 %.1f p95 %.1f p99 %.1f max %.1f ms; River p50 %.1f p95 %.1f p99 %.1f max %.1f ms",
		total, ms(relayLat.lat.P50), ms(relayLat.lat.P95), ms(relayLat.lat.P99), ms(relayLat.lat.Max),
		ms(riverLat.lat.P50), ms(riverLat.lat.P95), ms(riverLat.lat.P99), ms(riverLat.lat.Max))
	s.note("load average at the end: %s", loadAvg())
	return nil
}

type phaseResult struct {
	usage    PGUsage
	childCPU time.Duration
	lat      Summary
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// relayDrain loads n leads through the trigger and measures one relay
// delivering them.
func (s *scenario) relayDrain(ctx context.Context, n int) (phaseResult, error) {
	var res phaseResult
	db, err := s.scratch(ctx, 4)
	if err != nil {
		return res, err
	}
	s.progress("relay: loading %d leads (COPY through the trigger)", n)
	loaded, err := s.loadLeads(ctx, db.Pool, n, 10_000, nil)
	if err != nil {
		return res, err
	}
	if err := vacuum(ctx, db.Pool); err != nil {
		return res, err
	}
	ep, err := s.endpoint(paragonlocal.Faults{})
	if err != nil {
		return res, err
	}
	cfg := s.relayConfig(ep, db, "bench-river-relay")
	s.progress("relay: draining %d events", loaded)
	m, err := StartPGMeter(ctx, s.opts.Config.DatabaseURL, db.Name)
	if err != nil {
		return res, err
	}
	rr, err := s.startRelay(ctx, cfg)
	if err != nil {
		_, _ = m.Stop(ctx)
		return res, err
	}
	waitErr := waitDelivered(ctx, ep, db.Pool, int(loaded), 10*time.Minute)
	res.usage, err = m.Stop(ctx)
	if serr := rr.stop(); serr != nil && waitErr == nil {
		waitErr = serr
	}
	if waitErr != nil {
		return res, waitErr
	}
	if err != nil {
		return res, err
	}
	if d := duplicates(ep); d > 0 {
		s.note("relay drain: %d duplicate deliveries", d)
	}
	return res, nil
}

// insertLeadNow is one lead INSERT with created_at left to its default
// (now(): the transaction start), as an app writes.
const insertLeadNow = `INSERT INTO leads (external_id, owner_id, first_name, last_name, email, company, title, phone,
  lead_source, status, country, annual_revenue, number_of_employees, description)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
RETURNING id`

// relayColdLatency starts a relay, waits 2 s, writes riverRate leads/s from
// riverUsers Connected Users for dur, and summarises endpoint receipt minus
// each event's created_at.
func (s *scenario) relayColdLatency(ctx context.Context, dur time.Duration) (phaseResult, error) {
	var res phaseResult
	db, err := s.scratch(ctx, 8)
	if err != nil {
		return res, err
	}
	ep, err := s.endpoint(paragonlocal.Faults{})
	if err != nil {
		return res, err
	}
	cfg := s.relayConfig(ep, db, "bench-river-relay-latency")
	s.progress("relay: cold start, %d leads/s from %d users for %s starting 2 s later", riverRate, riverUsers, dur)
	rr, err := s.startRelay(ctx, cfg)
	if err != nil {
		return res, err
	}
	defer func() { _ = rr.stop() }()
	if !backoff.Sleep(ctx, 2*time.Second) {
		return res, ctx.Err()
	}
	total := int(dur.Seconds() * riverRate)
	if err := writeCold(ctx, db.Pool, s.leads, total, riverRate, riverUsers); err != nil {
		return res, err
	}
	if err := waitDelivered(ctx, ep, db.Pool, total, 2*time.Minute); err != nil {
		return res, err
	}
	if err := rr.stop(); err != nil {
		return res, err
	}
	res.lat, err = latencies(ctx, db.Pool, ep, `SELECT event_id::text, created_at FROM outbox`, total)
	return res, err
}

// latencies matches the endpoint's receipts to (event id, created_at) rows
// of query and summarises receipt - created_at.
func latencies(ctx context.Context, pool *pgxpool.Pool, ep *Endpoint, query string, want int) (Summary, error) {
	rows, err := pool.Query(ctx, query)
	if err != nil {
		return Summary{}, err
	}
	created := make(map[string]time.Time, want)
	var id string
	var at time.Time
	if _, err := pgx.ForEachRow(rows, []any{&id, &at}, func() error { created[id] = at; return nil }); err != nil {
		return Summary{}, err
	}
	seen := make(map[string]bool, want)
	lat := make([]time.Duration, 0, want)
	for _, r := range ep.Server.Received() {
		c, ok := created[r.EventID]
		if !ok || seen[r.EventID] {
			continue
		}
		seen[r.EventID] = true
		lat = append(lat, r.At.Sub(c))
	}
	if len(lat) != want {
		return Summary{}, fmt.Errorf("matched %d of %d events to their rows", len(lat), want)
	}
	return Summarize(lat), nil
}

// writeCold inserts total leads at rate per second, one per transaction,
// owners cycling over users, over 4 connections (open loop).
func writeCold(ctx context.Context, pool *pgxpool.Pool, l *Leads, total, rate, users int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan int, total)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				a := l.Args(i, "")[:14]
				a[1] = fmt.Sprintf("bench-user-%03d", i%users)
				if _, err := pool.Exec(ctx, insertLeadNow, a...); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		}()
	}
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	for sent := 0; sent < total && ctx.Err() == nil; {
		due := min(total, int(time.Since(start).Seconds()*float64(rate)))
		for ; sent < due; sent++ {
			jobs <- sent
		}
		<-tick.C
	}
	tick.Stop()
	close(jobs)
	wg.Wait()
	if first != nil {
		return fmt.Errorf("insert lead: %w", first)
	}
	return ctx.Err()
}

// riverPhase runs outbox-relay-river -mode mode in a scratch database
// without the outbox trigger, measuring from "go" to "done".
func (s *scenario) riverPhase(ctx context.Context, mode, leadsPath string, events int, args []string) (phaseResult, error) {
	var res phaseResult
	db, err := s.scratch(ctx, 4)
	if err != nil {
		return res, err
	}
	if _, err := db.Pool.Exec(ctx, `DROP TRIGGER leads_outbox ON leads`); err != nil {
		return res, err
	}
	ep, err := s.endpoint(paragonlocal.Faults{})
	if err != nil {
		return res, err
	}
	cmd := exec.CommandContext(ctx, s.opts.RiverExecutable, append([]string{"-mode", mode, "-database-url", db.URL, "-leads", leadsPath}, args...)...)
	cmd.Env = append(os.Environ(), ep.Env...)
	logs := &tailBuffer{max: 8 << 10}
	cmd.Stderr = logs
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return res, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return res, err
	}
	s.progress("River: %s (setting up)", mode)
	if err := cmd.Start(); err != nil {
		return res, fmt.Errorf("start %s: %w", s.opts.RiverExecutable, err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	defer func() {
		stdin.Close()
		select {
		case <-exited: //nolint:errcheck // closing stdin ends it; its exit status is not the result
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
		}
	}()
	expect := func(prefix string, timeout time.Duration) (string, error) {
		select {
		case l, ok := <-lines:
			if !ok {
				return "", fmt.Errorf("River bench exited before %q: %v\n%s", prefix, <-exited, logs)
			}
			if !strings.HasPrefix(l, prefix) {
				return "", fmt.Errorf("River bench said %q, want %q\n%s", l, prefix, logs)
			}
			return l, nil
		case <-time.After(timeout):
			return "", fmt.Errorf("River bench: no %q within %s\n%s", prefix, timeout, logs)
		}
	}
	if _, err := expect("ready", 10*time.Minute); err != nil {
		return res, err
	}
	s.progress("River: %s", mode)
	m, err := StartPGMeter(ctx, s.opts.Config.DatabaseURL, db.Name)
	if err != nil {
		return res, err
	}
	child0, _ := procCPU(cmd.Process.Pid, false)
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		_, _ = m.Stop(ctx)
		return res, err
	}
	_, doneErr := expect("done", 10*time.Minute)
	child1, _ := procCPU(cmd.Process.Pid, false)
	res.usage, err = m.Stop(ctx)
	res.childCPU = child1 - child0
	if doneErr != nil {
		return res, doneErr
	}
	if err != nil {
		return res, err
	}
	_, _ = io.WriteString(stdin, "stop\n")
	if got := ep.Server.Count(); got < events {
		return res, fmt.Errorf("endpoint accepted %d of %d events", got, events)
	}
	if d := duplicates(ep); d > 0 {
		s.note("River %s: %d duplicate deliveries", mode, d)
	}
	if mode == "latency" {
		res.lat, err = latencies(ctx, db.Pool, ep, `SELECT args->>'eventId', (args->>'createdAt')::timestamptz FROM river_job`, events)
	}
	return res, err
}
