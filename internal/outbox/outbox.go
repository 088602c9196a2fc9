// Package outbox is the relay's access to the outbox tables in Postgres:
// claiming due events under a lease, recording attempts and their outcomes,
// extending and releasing leases, and rescuing rows whose relay died.
//
// Every state change is one statement of sql/queries (run through the code
// sqlc generates from it, package dbsqlc) and is a compare-and-set: it applies only while the row is still in the state and
// lease the caller holds. This package never talks HTTP and never decides
// retry policy; the relay package does.
package outbox

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/dbsqlc"
)

// Status values of outbox.status.
const (
	StatusPending   = "pending"
	StatusInFlight  = "in_flight"
	StatusDelivered = "delivered"
	StatusDead      = "dead"
	// StatusWaiting: a keyed event behind an undelivered earlier event of
	// its ordering key; never claimed until promoted to pending.
	StatusWaiting = "waiting"
	// StatusSkipped: a dead event an operator released so that its key's
	// later events go out; terminal.
	StatusSkipped = "skipped"
)

// Event is one claimed outbox row.
type Event struct {
	ID      int64  // outbox.id
	EventID string // outbox.event_id (uuid text), also the payload's eventId
	Name    string // App Event name, e.g. "Lead Created"
	UserID  string // Connected User (token sub)
	Payload []byte // the jsonb payload as JSON text, byte for byte
	Attempt int32  // the attempt this claim counts (1-based, never reset)
	// AttemptsBase is outbox.attempts_base: the attempt count when an
	// operator last re-drove the event. Attempt - AttemptsBase is the number
	// of attempts spent since, which RELAY_MAX_ATTEMPTS limits.
	AttemptsBase int32
	CreatedAt    time.Time // when the event was written
	// LeaseFrom is this process's clock just before the claim statement
	// was sent: the lease in the database ends no earlier than LeaseFrom +
	// the lease length, so a send finished before then cannot overlap a
	// re-send after lease rescue.
	LeaseFrom time.Time
	// Keyed: the event has an ordering key; its delivery may make the next
	// event of the key pending.
	Keyed bool
}

// Outcome is what a finished attempt did to its row.
type Outcome string

// Outcomes understood by Record.
const (
	OutcomeDelivered Outcome = "delivered" // row -> delivered
	OutcomeRetry     Outcome = "retry"     // row -> pending, due after RetryDelay
	OutcomeDead      Outcome = "dead"      // row -> dead (terminal)
)

// Result is one finished attempt to record.
type Result struct {
	ID         int64
	Attempt    int32
	Outcome    Outcome
	HTTPStatus int           // 0 when no response arrived (stored as NULL)
	Error      string        // "" on success (stored as NULL)
	Started    time.Time     // attempt start
	Finished   time.Time     // attempt end
	RetryDelay time.Duration // for OutcomeRetry: next attempt at database now() + RetryDelay
	// Keyed is Event.Keyed (not written; tells the relay that recording a
	// delivery may have made another event of the key claimable).
	Keyed bool
	// Uncounted: this attempt does not count toward the event's max
	// attempts (configuration refused, breaker open, shutting down).
	Uncounted bool
}

// Store runs the outbox statements on a pool. Use one Store per relay: it
// keeps the relay's round-robin position across Connected Users.
type Store struct {
	pool *pgxpool.Pool
	q    *dbsqlc.Queries
	// Timeout bounds each statement; default 30s.
	Timeout time.Duration
	// FairUsers is the most Connected Users one claim visits in its fair
	// pass; default 100. FairPerUser is the most events it takes from each;
	// default 10. See sql/queries/claim.sql.
	FairUsers, FairPerUser int
	// RecheckInterval is how often the relay calls RecheckMark (the
	// relay.Rechecker service), finding rows that appeared behind the
	// low-water mark (see sql/queries/claim.sql); default 2s. A row can wait
	// this long beyond its due time in the rare cases listed there; longer
	// while a long transaction holds the xmin horizon, since a re-check
	// that takes d is not repeated for backoff.Paced(RecheckInterval, d)
	// (at least 50 × d, at most 10 × RecheckInterval). Negative disables the
	// mark: every claim scans from the front.
	RecheckInterval time.Duration
	// MarkLag keeps the low-water mark this far behind the rows it was taken
	// from; default 1s. A lead's next_attempt_at is its transaction's start,
	// so concurrent inserts commit slightly out of order: without the lag a
	// row committed a few milliseconds late would wait for the re-check.
	// The claim then reads at most MarkLag's worth of dead index entries.
	MarkLag time.Duration

	mu     sync.Mutex
	cursor string    // last user served by a fair pass; "" = start over
	mark   time.Time // low-water mark of next_attempt_at; zero = none
	// markGen counts the times the mark was lowered or dropped (RecheckMark,
	// DropMark, Release). A claim raises the mark only if markGen did not
	// change while it ran: otherwise it would undo a lowering it never saw,
	// and the row the re-check found would wait for another re-check.
	markGen uint64
}

// New returns a Store on pool.
func New(pool *pgxpool.Pool) *Store {
	return &Store{pool: pool, q: dbsqlc.New(pool), Timeout: 30 * time.Second, FairUsers: 100, FairPerUser: 10, RecheckInterval: 2 * time.Second, MarkLag: time.Second}
}

// Pool returns the underlying pool.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

func (s *Store) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.Timeout)
}

// Gauges are backlog figures for metrics.
type Gauges struct {
	Pending, InFlight, Dead int64
	OldestPendingSeconds    float64 // age of the oldest pending or in-flight event; 0 if none
	// BlockedKeys counts ordering keys whose first undelivered event is
	// dead; OldestBlockedKeySeconds is the age of the oldest such dead
	// event (0 if none). See sql/queries/blocked_keys_count.sql.
	BlockedKeys             int64
	OldestBlockedKeySeconds float64
}

// ReadGauges counts pending, in-flight and dead rows and the age of the
// oldest undelivered one.
func (s *Store) ReadGauges(ctx context.Context) (Gauges, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	row, err := s.q.Gauges(ctx)
	if err != nil {
		return Gauges{}, fmt.Errorf("read outbox gauges: %w", err)
	}
	blocked, err := s.q.BlockedKeysCount(ctx)
	if err != nil {
		return Gauges{}, fmt.Errorf("read outbox gauges: blocked keys: %w", err)
	}
	return Gauges{
		Pending: row.Pending, InFlight: row.InFlight, Dead: row.Dead, OldestPendingSeconds: row.OldestPendingSeconds,
		BlockedKeys: blocked.BlockedKeys, OldestBlockedKeySeconds: blocked.OldestBlockedSeconds,
	}, nil
}

// LowWaterMark returns the low-water mark the next claim may use (zero:
// none). See sql/queries/claim.sql.
func (s *Store) LowWaterMark() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mark
}

// RecheckMark looks for a due pending row behind the low-water mark
// (sql/queries/pending_behind_mark.sql) and, when there is one, lowers the
// mark to it so that the next claim takes it. It reports whether it lowered
// the mark. It does nothing without a mark. It runs outside the claim loop
// (relay.Rechecker), so its cost, which grows with the dead index entries a
// long transaction keeps alive, never delays a claim.
func (s *Store) RecheckMark(ctx context.Context) (lowered bool, err error) {
	s.mu.Lock()
	mark := s.mark
	s.mu.Unlock()
	if mark.IsZero() || s.RecheckInterval < 0 {
		return false, nil
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	behind, err := s.q.PendingBehindMark(ctx, mark)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("re-check the low-water mark: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mark.IsZero() || !behind.Before(s.mark) {
		return false, nil // reset or already lowered meanwhile
	}
	s.mark = behind
	s.markGen++
	return true, nil
}

// DropMark forgets the low-water mark: the next claim reads the pending
// indexes from the front, finding every due row however far behind the
// mark it was. The relay's Rechecker calls it when the re-check keeps
// failing (e.g. a statement_timeout shorter than the re-check takes while a
// long transaction holds the xmin horizon), so that no row stays behind
// the mark for want of a re-check.
func (s *Store) DropMark() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mark = time.Time{}
	s.markGen++
}

// Claim takes up to limit due pending events for relayID, marking them
// in_flight with a lease of the given length and counting the attempt.
// It returns at most limit events: a share for each of up to FairUsers
// Connected Users (round-robin across claims), the rest oldest due first.
func (s *Store) Claim(ctx context.Context, relayID string, limit int, lease time.Duration) ([]Event, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	s.mu.Lock()
	after := s.cursor
	var mark *time.Time
	if s.RecheckInterval >= 0 && !s.mark.IsZero() {
		m := s.mark
		mark = &m
	}
	gen := s.markGen
	s.mu.Unlock()
	leaseFrom := time.Now()
	rows, err := s.q.Claim(ctx, dbsqlc.ClaimParams{
		RelayID:    relayID,
		MaxRows:    int32(min(limit, math.MaxInt32)),
		LeaseMs:    lease.Milliseconds(),
		UserCursor: after,
		MaxUsers:   int32(min(s.FairUsers, math.MaxInt32)),
		PerUser:    int32(min(s.FairPerUser, math.MaxInt32)),
		LowWater:   mark,
	})
	if err != nil {
		return nil, fmt.Errorf("claim outbox rows: %w", err)
	}
	evs := make([]Event, 0, len(rows))
	fairUsers := map[string]struct{}{}
	lastFair := ""
	var oldestFill time.Time // next_attempt_at of the oldest row the fill pass took
	var newestDue time.Time  // of the newest row taken
	for _, row := range rows {
		e := Event{
			ID: row.ID, EventID: row.EventID, Name: row.EventName, UserID: row.UserID,
			Attempt: row.Attempts, AttemptsBase: row.AttemptsBase, CreatedAt: row.CreatedAt,
			Keyed: row.Keyed,
		}
		due := row.NextAttemptAt
		if row.Fair {
			fairUsers[e.UserID] = struct{}{}
			lastFair = max(lastFair, e.UserID)
		} else if oldestFill.IsZero() || due.Before(oldestFill) {
			oldestFill = due
		}
		if due.After(newestDue) {
			newestDue = due
		}
		e.Payload = []byte(row.Payload)
		e.LeaseFrom = leaseFrom
		evs = append(evs, e)
	}
	// Next claim's fair pass continues after the last user served, or starts
	// over once this pass ran out of users.
	s.mu.Lock()
	if len(fairUsers) >= s.FairUsers || (len(fairUsers) > 0 && len(evs) >= limit) {
		s.cursor = lastFair
	} else {
		s.cursor = ""
	}
	// The fill pass takes the oldest due unlocked rows, so every pending row
	// left behind is at least as new as the oldest it took; when the claim
	// took fewer than limit, it took every due row. (Bar the cases
	// sql/queries/claim.sql lists, which RecheckMark finds.) The mark only moves
	// forward.
	if len(evs) < limit && !newestDue.IsZero() {
		// Every due unlocked pending row was claimed: what is left is newer
		// than any row taken.
		oldestFill = newestDue
	}
	if gen == s.markGen && !oldestFill.IsZero() && oldestFill.Add(-s.MarkLag).After(s.mark) {
		s.mark = oldestFill.Add(-s.MarkLag)
	}
	s.mu.Unlock()
	return evs, nil
}

// Record writes a batch of attempt results in one statement and returns the
// ids whose row moved. A result whose row no longer matches (lease lost and
// row claimed again, or re-driven) is still logged as an attempt but does not
// move the row; its id is missing from moved.
func (s *Store) Record(ctx context.Context, relayID string, results []Result) (moved []int64, err error) {
	if len(results) == 0 {
		return nil, nil
	}
	// In id order: the statement probes (and locks) rows in array order, and
	// every relay's batches locking rows in one order cannot deadlock each
	// other on those rows (two relays recording and extending overlapping
	// rows in different orders did: 40P01, retried, but wasted work).
	results = slices.SortedStableFunc(slices.Values(results), func(a, b Result) int { return cmp.Compare(a.ID, b.ID) })
	n := len(results)
	// One array per column (record_results.sql unnests them side by side);
	// HTTPStatus 0 and Error "" are stored as NULL by the statement.
	p := dbsqlc.RecordResultsParams{
		RelayID:       relayID,
		Ids:           make([]int64, n),
		Attempts:      make([]int32, n),
		Outcomes:      make([]string, n),
		HTTPStatuses:  make([]int32, n),
		Errors:        make([]string, n),
		StartedAts:    make([]time.Time, n),
		FinishedAts:   make([]time.Time, n),
		RetryDelaysMs: make([]int64, n),
		Uncounted:     make([]bool, n),
	}
	for i, r := range results {
		p.Ids[i], p.Attempts[i], p.Outcomes[i] = r.ID, r.Attempt, string(r.Outcome)
		p.HTTPStatuses[i], p.Errors[i] = int32(r.HTTPStatus), r.Error
		p.StartedAts[i], p.FinishedAts[i] = r.Started, r.Finished
		p.RetryDelaysMs[i], p.Uncounted[i] = r.RetryDelay.Milliseconds(), r.Uncounted
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	moved, err = s.q.RecordResults(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("record attempts: %w", err)
	}
	return moved, nil
}

// Held identifies a claimed row: its id and the attempt it was claimed at.
type Held struct {
	ID      int64
	Attempt int32
}

// Release returns claimed-but-unsent rows to pending without spending their
// attempt (used at shutdown). Returns how many rows it released.
func (s *Store) Release(ctx context.Context, relayID string, held []Held) (int64, error) {
	if len(held) == 0 {
		return 0, nil
	}
	// Released rows keep their next_attempt_at, which may be behind the
	// low-water mark: the next claim looks from the front.
	s.mu.Lock()
	s.mark = time.Time{}
	s.markGen++
	s.mu.Unlock()
	ids := make([]int64, len(held))
	att := make([]int32, len(held))
	for i, h := range held {
		ids[i], att[i] = h.ID, h.Attempt
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	n, err := s.q.Release(ctx, dbsqlc.ReleaseParams{RelayID: relayID, Ids: ids, Attempts: att})
	if err != nil {
		return 0, fmt.Errorf("release claimed rows: %w", err)
	}
	return n, nil
}

// ExtendLeases sets the lease of the given rows, still held by relayID, to
// expire lease from now (database clock). Returns how many it extended.
func (s *Store) ExtendLeases(ctx context.Context, relayID string, ids []int64, lease time.Duration) (int64, error) {
	ext, err := s.ExtendLeasesOf(ctx, relayID, ids, lease)
	return int64(len(ext)), err
}

// ExtendLeasesOf is ExtendLeases returning the ids whose lease it extended;
// the others are no longer held by relayID (rescued, recorded, re-driven).
func (s *Store) ExtendLeasesOf(ctx context.Context, relayID string, ids []int64, lease time.Duration) ([]int64, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	ids = slices.Sorted(slices.Values(ids)) // lock order: see Record
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	ext, err := s.q.ExtendLeases(ctx, dbsqlc.ExtendLeasesParams{RelayID: relayID, Ids: ids, LeaseMs: lease.Milliseconds()})
	if err != nil {
		return nil, fmt.Errorf("extend leases: %w", err)
	}
	return ext, nil
}

// RescueExpired makes up to limit rows whose lease expired claimable again
// (or dead once they used maxAttempts), logging each interrupted attempt.
// Returns the rescued ids.
func (s *Store) RescueExpired(ctx context.Context, limit int, maxAttempts int) ([]int64, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	ids, err := s.q.RescueExpired(ctx, int32(min(limit, math.MaxInt32)), int32(min(maxAttempts, math.MaxInt32)))
	if err != nil {
		return nil, fmt.Errorf("rescue expired leases: %w", err)
	}
	return ids, nil
}

// PromoteWaiting runs one step of the promotion sweep (sql/queries/promote_waiting.sql):
// it visits up to limit ordering keys after cursor ("" = from the first) and
// makes pending each key's first undelivered event if it is waiting. It
// returns how many events it promoted and the cursor for the next step: ""
// once it visited fewer than limit keys (the pass is complete).
func (s *Store) PromoteWaiting(ctx context.Context, cursor string, limit int) (promoted int64, next string, err error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	row, err := s.q.PromoteWaiting(ctx, cursor, int32(min(limit, math.MaxInt32)))
	if err != nil {
		return 0, cursor, fmt.Errorf("promote waiting events: %w", err)
	}
	next = row.LastKey
	if row.Visited < int64(limit) {
		next = ""
	}
	return row.Promoted, next, nil
}

// Statement is one statement Store runs: its file name under sql/queries
// (without .sql) and its text as sqlc generated it.
type Statement struct {
	Name, SQL string
}

// Statements lists every statement Store runs, for start-up checks (the
// relay EXPLAINs each to test its role's privileges) and benchmarks.
func Statements() []Statement {
	return []Statement{
		{"claim", dbsqlc.Claim},
		{"record_results", dbsqlc.RecordResults},
		{"release", dbsqlc.Release},
		{"extend_leases", dbsqlc.ExtendLeases},
		{"rescue_expired", dbsqlc.RescueExpired},
		{"gauges", dbsqlc.Gauges},
		{"blocked_keys_count", dbsqlc.BlockedKeysCount},
		{"promote_waiting", dbsqlc.PromoteWaiting},
		{"pending_behind_mark", dbsqlc.PendingBehindMark},
	}
}
