package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/procfs"
)

// ProcMem is the memory a Linux process uses, from /proc/<pid>/status.
type ProcMem struct {
	RSS int64 // VmRSS: resident set size now, bytes
	HWM int64 // VmHWM: peak resident set size so far, bytes
}

// ReadProcMem reads VmRSS and VmHWM of process pid (0: this process) from
// /proc/<pid>/status with github.com/prometheus/procfs. It fails when the
// process does not exist or has no VmRSS (a kernel thread, or a process that
// has exited).
func ReadProcMem(pid int) (ProcMem, error) {
	return readProcMem(procfs.DefaultMountPoint, pid)
}

// readProcMem is ReadProcMem with /proc mounted at mount (tests use a
// directory holding a fixture).
func readProcMem(mount string, pid int) (ProcMem, error) {
	fs, err := procfs.NewFS(mount)
	if err != nil {
		return ProcMem{}, err
	}
	var p procfs.Proc
	if pid == 0 {
		p, err = fs.Self()
	} else {
		p, err = fs.Proc(pid)
	}
	if err != nil {
		return ProcMem{}, err
	}
	st, err := p.NewStatus()
	if err != nil {
		return ProcMem{}, fmt.Errorf("proc status of pid %d: %w", p.PID, err)
	}
	if st.VmRSS == 0 { // absent, or not in kB
		return ProcMem{}, fmt.Errorf("proc status of pid %d: no VmRSS in kB", p.PID)
	}
	return ProcMem{RSS: int64(st.VmRSS), HWM: int64(st.VmHWM)}, nil
}

// RSSSampler reads a process's VmRSS at a fixed interval and keeps the peak.
// Start it with SampleRSS; Stop ends it and returns the result.
type RSSSampler struct {
	pid    int
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	peak    int64
	last    ProcMem
	samples int
	err     error // first read error, if no sample succeeded
}

// SampleRSS samples pid's memory every interval until Stop or ctx ends. A
// failed read (the process exited) is ignored once a sample has succeeded.
func SampleRSS(ctx context.Context, pid int, interval time.Duration) *RSSSampler {
	ctx, cancel := context.WithCancel(ctx)
	s := &RSSSampler{pid: pid, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			s.sample()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *RSSSampler) sample() {
	m, err := ReadProcMem(s.pid)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if s.samples == 0 && s.err == nil {
			s.err = err
		}
		return
	}
	s.samples++
	s.last = m
	s.peak = max(s.peak, m.RSS)
}

// Snapshot takes one more sample now and returns the peak VmRSS seen, the
// latest reading (whose HWM is the kernel's own peak) and the sample count.
func (s *RSSSampler) Snapshot() (peak int64, last ProcMem, samples int) {
	s.sample()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak, s.last, s.samples
}

// Stop ends sampling and returns the peak VmRSS seen, the number of samples,
// and an error when no sample succeeded.
func (s *RSSSampler) Stop() (peak int64, samples int, err error) {
	s.cancel()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.samples == 0 {
		return 0, 0, fmt.Errorf("no memory sample of pid %d: %w", s.pid, s.err)
	}
	return s.peak, s.samples, nil
}

// mib converts bytes to MiB.
func mib(b int64) float64 { return float64(b) / (1 << 20) }
