package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"
)

// ProcMem is the memory a Linux process uses, from /proc/<pid>/status.
type ProcMem struct {
	RSS int64 // VmRSS: resident set size now, bytes
	HWM int64 // VmHWM: peak resident set size so far, bytes
}

// ParseProcStatus reads VmRSS and VmHWM (reported in kB) from the text of
// /proc/<pid>/status. It fails when VmRSS is missing (a kernel thread or a
// process that has exited).
func ParseProcStatus(r io.Reader) (ProcMem, error) {
	var m ProcMem
	var haveRSS bool
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Bytes()
		var dst *int64
		switch {
		case bytes.HasPrefix(line, []byte("VmRSS:")):
			dst, haveRSS = &m.RSS, true
		case bytes.HasPrefix(line, []byte("VmHWM:")):
			dst = &m.HWM
		default:
			continue
		}
		f := bytes.Fields(line[bytes.IndexByte(line, ':')+1:])
		if len(f) != 2 || string(f[1]) != "kB" {
			return m, fmt.Errorf("proc status: unexpected line %q", line)
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return m, fmt.Errorf("proc status: %q: %w", line, err)
		}
		*dst = kb * 1024
	}
	if err := sc.Err(); err != nil {
		return m, err
	}
	if !haveRSS {
		return m, fmt.Errorf("proc status: no VmRSS")
	}
	return m, nil
}

// ReadProcMem reads /proc/<pid>/status (pid 0: this process).
func ReadProcMem(pid int) (ProcMem, error) {
	path := "/proc/self/status"
	if pid != 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/status"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return ProcMem{}, err
	}
	return ParseProcStatus(bytes.NewReader(b))
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
