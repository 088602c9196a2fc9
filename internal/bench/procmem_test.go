package bench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

const statusFixture = `Name:	outbox-relay
Umask:	0022
State:	S (sleeping)
VmPeak:	 1290876 kB
VmSize:	 1290876 kB
VmHWM:	   48212 kB
VmRSS:	   40960 kB
RssAnon:	   30000 kB
Threads:	9
`

// writeStatus puts text at <dir>/<pid>/status, a /proc for readProcMem.
func writeStatus(t testing.TB, dir string, pid int, text string) {
	t.Helper()
	d := filepath.Join(dir, strconv.Itoa(pid))
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "status"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadProcMemFixture(t *testing.T) {
	dir := t.TempDir()
	writeStatus(t, dir, 4242, statusFixture)
	m, err := readProcMem(dir, 4242)
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS != 40960*1024 || m.HWM != 48212*1024 {
		t.Fatalf("got %+v", m)
	}
	writeStatus(t, dir, 2, "Name:\tkthreadd\nState:\tS\n")
	if _, err := readProcMem(dir, 2); err == nil {
		t.Fatal("no VmRSS: want an error")
	}
	writeStatus(t, dir, 3, "Name:\tx\nVmRSS:\t12 MB\n")
	if _, err := readProcMem(dir, 3); err == nil {
		t.Fatal("unknown unit: want an error")
	}
	if _, err := readProcMem(dir, 5); err == nil {
		t.Fatal("no such process: want an error")
	}
}

func TestReadProcMemSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc on this system")
	}
	m, err := ReadProcMem(0)
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS <= 0 || m.HWM < m.RSS {
		t.Fatalf("implausible self memory %+v", m)
	}
}

// TestSampleRSSSubprocess samples a real child process and keeps the
// result after the child exits.
func TestSampleRSSSubprocess(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc on this system")
	}
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skip("cannot start sleep:", err)
	}
	s := SampleRSS(context.Background(), cmd.Process.Pid, 5*time.Millisecond)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, _, n := s.Snapshot(); n >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	peak, n, err := s.Stop()
	if err != nil || peak <= 0 || n < 3 {
		t.Fatalf("Stop = %d bytes, %d samples, %v", peak, n, err)
	}
}

func TestSampleRSSNoProcess(t *testing.T) {
	s := SampleRSS(context.Background(), 1<<30, time.Millisecond)
	if _, _, err := s.Stop(); err == nil {
		t.Fatal("want an error for a process that does not exist")
	}
}

func BenchmarkReadProcMemSelf(b *testing.B) {
	for b.Loop() {
		if _, err := ReadProcMem(0); err != nil {
			b.Fatal(err)
		}
	}
}
