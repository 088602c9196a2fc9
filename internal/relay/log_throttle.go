package relay

import (
	"log/slog"
	"sync"
	"time"
)

// logErr logs a failure of a retried database statement: the first and then
// every 10th consecutive one, with a consecutive_errors count, so that an
// outage does not flood the log.
func (r *Relay) logErr(msg string, err error, consecutive int, attrs ...any) {
	if consecutive == 1 || consecutive%10 == 0 {
		r.log.Error(msg, append([]any{slog.Any("error", err), slog.Int("consecutive_errors", consecutive)}, attrs...)...)
	}
}

// failureSummaryEvery is the shortest time between two summaries of
// retryable failures.
const failureSummaryEvery = 30 * time.Second

// failureSummary logs attempts that failed and will be retried: the first
// failure after a quiet period at once, then at most one summary per
// interval, with failed_attempts, auth_failures, the last status and error,
// and "over", the time since the previous summary. A timer flushes what was
// counted one interval after the previous summary, so failures are reported
// whether or not more results arrive. Safe for concurrent use.
type failureSummary struct {
	log   *slog.Logger
	every time.Duration
	now   func() time.Time                        // time.Now; tests replace it
	after func(time.Duration, func()) *time.Timer // time.AfterFunc; tests replace it

	mu         sync.Mutex
	since      time.Time // start of the window summarised (previous summary, or first failure)
	lastLog    time.Time // zero: nothing logged yet
	n, auth    int
	lastErr    string
	lastStatus int
	timer      *time.Timer // armed while failures wait for the next summary
	closed     bool
}

func newFailureSummary(log *slog.Logger, every time.Duration) *failureSummary {
	return &failureSummary{log: log, every: every, now: time.Now, after: time.AfterFunc}
}

// add counts one retryable failure; flushIfDue logs it.
func (s *failureSummary) add(httpStatus int, errText string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == 0 && s.lastLog.IsZero() {
		s.since = s.now()
	}
	s.n++
	s.lastErr, s.lastStatus = errText, httpStatus
	if httpStatus == 401 || httpStatus == 403 {
		s.auth++
	}
}

// flushIfDue logs the summary now if the interval since the previous one
// has passed; otherwise it makes sure a timer will.
func (s *failureSummary) flushIfDue() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == 0 || s.closed {
		return
	}
	now := s.now()
	if s.lastLog.IsZero() || now.Sub(s.lastLog) >= s.every {
		s.flushLocked(now)
		return
	}
	if s.timer == nil {
		s.timer = s.after(s.lastLog.Add(s.every).Sub(now), s.onTimer)
	}
}

func (s *failureSummary) onTimer() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.timer = nil
	if s.n > 0 && !s.closed {
		s.flushLocked(s.now())
	}
}

// close logs what is still counted and stops the timer.
func (s *failureSummary) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	if s.n > 0 && !s.closed {
		s.flushLocked(s.now())
	}
	s.closed = true
}

func (s *failureSummary) flushLocked(now time.Time) {
	msg := "attempts failed and will be retried"
	if s.auth > 0 {
		msg = "Paragon refused the relay's tokens (401/403): check PARAGON_SIGNING_KEY and PARAGON_PROJECT_ID; attempts will be retried"
	}
	s.log.Warn(msg, slog.Int("failed_attempts", s.n), slog.Int("auth_failures", s.auth),
		slog.Duration("over", now.Sub(s.since).Round(time.Second)), slog.Int("last_http_status", s.lastStatus), slog.String("last_error", s.lastErr))
	s.n, s.auth, s.lastErr, s.lastStatus = 0, 0, "", 0
	s.since, s.lastLog = now, now
}
