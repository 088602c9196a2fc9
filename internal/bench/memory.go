package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/paragonlocal"
)

// ChildEnv is set (to "1") in the environment of the relay subprocess the
// memory scenario starts, so that a test binary standing in for
// outbox-relay knows to run the command in os.Args instead of tests.
const ChildEnv = "OUTBOX_RELAY_BENCH_CHILD"

// runMemory: the drain backlog drained by `outbox-relay relay` as a
// subprocess (its own Go runtime, nothing else in the process), with its
// VmRSS sampled from /proc every 100 ms.
func runMemory(ctx context.Context, s *scenario) error {
	if s.opts.Executable == "" {
		return errors.New("no outbox-relay executable to run as the relay subprocess")
	}
	n := drainSize(s)
	db, err := s.scratch(ctx, 4)
	if err != nil {
		return err
	}
	s.progress("loading %d leads", n)
	loaded, err := s.loadLeads(ctx, db.Pool, n, 10_000, nil)
	if err != nil {
		return err
	}
	if err := vacuum(ctx, db.Pool); err != nil {
		return err
	}
	ep, err := s.endpoint(paragonlocal.Faults{})
	if err != nil {
		return err
	}
	cfg := s.relayConfig(ep, db, "bench-memory")
	cmd := exec.Command(s.opts.Executable, "relay",
		"-concurrency", strconv.Itoa(cfg.Concurrency), "-batch-size", strconv.Itoa(cfg.BatchSize),
		"-poll-interval", cfg.PollInterval.String(), "-rate-limit", strconv.FormatFloat(cfg.RateLimit, 'f', -1, 64),
		"-relay-id", cfg.RelayID)
	cmd.Env = append(os.Environ(), ep.Env...)
	cmd.Env = append(cmd.Env, "DATABASE_URL="+db.URL, "RELAY_ADMIN_ADDR=off", "RELAY_PURGE_INTERVAL=0", "LOG_LEVEL=warn", ChildEnv+"=1")
	logs := &tailBuffer{max: 8 << 10}
	cmd.Stdout, cmd.Stderr = logs, logs

	s.progress("draining %d events with a relay subprocess", loaded)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start relay subprocess: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	sampler := SampleRSS(ctx, cmd.Process.Pid, 100*time.Millisecond)
	defer func() { _, _, _ = sampler.Stop() }() // stopped and checked below; this covers early returns

	waitCtx, cancel := context.WithCancel(ctx)
	waited := make(chan error, 1)
	go func() { waited <- waitDelivered(waitCtx, ep, db.Pool, int(loaded), 30*time.Minute) }()
	var waitErr error
	select {
	case waitErr = <-waited:
	case err := <-exited:
		cancel()
		<-waited //nolint:errcheck // canceled: the early exit is the error
		return fmt.Errorf("relay subprocess exited early (%v):\n%s", err, logs)
	}
	cancel()
	took := time.Since(start)
	peak, last, samples := sampler.Snapshot()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			return fmt.Errorf("relay subprocess: %v:\n%s", err, logs)
		}
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		<-exited //nolint:errcheck // killed: the missed SIGTERM is the error
		return fmt.Errorf("relay subprocess did not stop within a minute of SIGTERM:\n%s", logs)
	}
	if waitErr != nil {
		return fmt.Errorf("%w\n%s", waitErr, logs)
	}
	if _, _, err := sampler.Stop(); err != nil {
		return err
	}
	s.add("peak RSS", mib(max(peak, last.HWM)), "MiB", AtMost(100))
	s.add("sampled RSS max", mib(peak), "MiB", nil)
	s.add("throughput", Rate(loaded, took), "events/s", nil)
	s.note("`outbox-relay relay` subprocess, concurrency %d, batch %d: %d samples of VmRSS every 100 ms; peak RSS = max(sampled VmRSS, VmHWM %.1f MiB at the end); throughput includes process start-up",
		cfg.Concurrency, cfg.BatchSize, samples, mib(last.HWM))
	return nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
