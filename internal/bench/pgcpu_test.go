package bench

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// Field 2 holds spaces and a ')' : fields are counted after the last ')'.
	stat := "4242 (postgres: u db 127.0.0.1(5) idle) S 1 4242 4242 0 -1 4194560 100 0 0 0 150 25 7 3 20 0 1 0 100 1000 10 18446744073709551615"
	got, err := parseStatCPU(stat, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := 175 * clockTick; got != want {
		t.Errorf("utime+stime = %s, want %s", got, want)
	}
	got, err = parseStatCPU(stat, true)
	if err != nil {
		t.Fatal(err)
	}
	if want := 185 * clockTick; got != want {
		t.Errorf("with reaped children = %s, want %s", got, want)
	}
	for _, bad := range []string{"", "12 no-parens S 1", "1 (x) S 1 2 3", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 abc 0 0 0 20 0 1"} {
		if _, err := parseStatCPU(bad, true); err == nil || !strings.Contains(err.Error(), "/proc stat") {
			t.Errorf("parseStatCPU(%q) error = %v, want a /proc stat error", bad, err)
		}
	}
}

func TestProcCPUSelf(t *testing.T) {
	// Burn some CPU, then the kernel's figure for this process must be
	// non-zero and a real pid's stat must parse.
	deadline := time.Now().Add(50 * time.Millisecond)
	for x := 0; time.Now().Before(deadline); x++ {
		_ = x * x
	}
	c, err := procCPU(os.Getpid(), false)
	if err != nil {
		t.Fatal(err)
	}
	if c <= 0 {
		t.Errorf("procCPU(self) = %s, want > 0 after burning CPU", c)
	}
	if _, err := procCPU(-1, false); err == nil {
		t.Error("procCPU(-1): no error")
	}
}
