package relay

import (
	"bufio"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/testutil"
)

func summaryLines(t *testing.T, buf *testutil.SyncBuffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(buf.String()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// TestFailureSummaryFlushesOnATimerOverTheWindowSincePreviousSummary: the
// first retryable failure is logged at once; failures counted after a
// summary are logged when the interval since that summary has passed, by a
// timer, with no later batch needed, and "over" is measured from the
// previous summary.
func TestFailureSummaryFlushesOnATimerOverTheWindowSincePreviousSummary(t *testing.T) {
	var buf testutil.SyncBuffer
	s := newFailureSummary(slog.New(slog.NewJSONHandler(&buf, nil)), 30*time.Second)
	var mu sync.Mutex
	clock := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	var armed []time.Duration
	var fire func()
	s.after = func(d time.Duration, f func()) *time.Timer {
		armed, fire = append(armed, d), f
		return time.AfterFunc(time.Hour, func() {}) // never fires by itself
	}

	s.add(500, "HTTP 500")
	s.flushIfDue()
	lines := summaryLines(t, &buf)
	if len(lines) != 1 || lines[0]["failed_attempts"] != 1.0 || lines[0]["over"] != 0.0 {
		t.Fatalf("after the first failure: %v, want one line with failed_attempts=1 over=0s", lines)
	}

	// A batch 10 s later with two failures: too soon for a summary, so a
	// timer is armed for the rest of the interval.
	advance(10 * time.Second)
	s.add(503, "HTTP 503")
	s.add(401, "HTTP 401")
	s.flushIfDue()
	if n := len(summaryLines(t, &buf)); n != 1 {
		t.Fatalf("%d log lines 10 s after a summary, want still 1", n)
	}
	if len(armed) != 1 || armed[0] != 20*time.Second {
		t.Fatalf("timers armed: %v, want one for the 20 s left of the interval", armed)
	}
	// Another batch before the timer: no second timer.
	s.add(500, "HTTP 500 again")
	s.flushIfDue()
	if len(armed) != 1 {
		t.Fatalf("timers armed: %v, want still one", armed)
	}

	// No batch arrives any more; the timer fires 30 s after the summary.
	advance(20 * time.Second)
	fire()
	lines = summaryLines(t, &buf)
	if len(lines) != 2 {
		t.Fatalf("after the timer: %d lines, want 2:\n%s", len(lines), buf.String())
	}
	l := lines[1]
	if l["failed_attempts"] != 3.0 || l["auth_failures"] != 1.0 || l["last_error"] != "HTTP 500 again" ||
		l["over"] != float64(30*time.Second) || !strings.Contains(l["msg"].(string), "refused the relay's tokens") {
		t.Fatalf("summary %v, want 3 failures (1 auth) over 30s since the previous summary", l)
	}

	// Quiet now: the timer finds nothing and logs nothing; close flushes
	// what is left.
	fire()
	advance(time.Second)
	s.add(500, "late")
	s.close()
	lines = summaryLines(t, &buf)
	if len(lines) != 3 || lines[2]["failed_attempts"] != 1.0 || lines[2]["over"] != float64(time.Second) {
		t.Fatalf("after close: %v, want a third line with the last failure over 1s", lines)
	}
}

// TestFailureSummaryTimerIsReal: with the real clock and timer, a failure
// counted after a summary is logged without any later call.
func TestFailureSummaryTimerIsReal(t *testing.T) {
	var buf testutil.SyncBuffer
	s := newFailureSummary(slog.New(slog.NewJSONHandler(&buf, nil)), 20*time.Millisecond)
	defer s.close()
	s.add(500, "first")
	s.flushIfDue()
	s.add(500, "second")
	s.flushIfDue()
	deadline := time.Now().Add(time.Minute)
	for len(summaryLines(t, &buf)) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the second failure was never summarised:\n%s", buf.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if l := summaryLines(t, &buf)[1]; l["last_error"] != "second" {
		t.Fatalf("second summary %v", l)
	}
}
