package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ActivitySampler is a poor man's pg_stat_statements: it samples
// pg_stat_activity of one database at a fixed interval and counts the
// active backends by statement, so the share of samples approximates the
// share of database time each statement takes. The relay's statements are
// named by their leading "-- name:" comment (sql/*.sql).
type ActivitySampler struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	samples int            // polls made
	active  int            // active backends seen, over all polls
	byQuery map[string]int // active backends seen, by statement
	waiting map[string]int // active backends seen waiting, by wait event
}

// SampleActivity starts sampling database dbName through pool every
// interval until Stop.
func SampleActivity(ctx context.Context, pool *pgxpool.Pool, dbName string, interval time.Duration) *ActivitySampler {
	ctx, cancel := context.WithCancel(ctx)
	a := &ActivitySampler{cancel: cancel, done: make(chan struct{}), byQuery: map[string]int{}, waiting: map[string]int{}}
	go func() {
		defer close(a.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			a.poll(ctx, pool, dbName)
		}
	}()
	return a
}

func (a *ActivitySampler) poll(ctx context.Context, pool *pgxpool.Pool, dbName string) {
	rows, err := pool.Query(ctx, `
		SELECT query, coalesce(wait_event_type || ':' || wait_event, '')
		FROM pg_stat_activity
		WHERE datname = $1 AND state = 'active' AND pid <> pg_backend_pid()`, dbName)
	if err != nil {
		return
	}
	var q, wait string
	seen := map[string]int{}
	waits := map[string]int{}
	n := 0
	_, err = pgx.ForEachRow(rows, []any{&q, &wait}, func() error {
		n++
		seen[StatementLabel(q)]++
		if wait != "" {
			waits[wait]++
		}
		return nil
	})
	if err != nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.samples++
	a.active += n
	for k, v := range seen {
		a.byQuery[k] += v
	}
	for k, v := range waits {
		a.waiting[k] += v
	}
}

// StatementLabel names a statement for the sampler: the name in a leading
// "-- name: ..." comment, else its first 40 characters, whitespace folded.
func StatementLabel(q string) string {
	q = strings.TrimSpace(q)
	if rest, ok := strings.CutPrefix(q, "--"); ok {
		name, _, _ := strings.Cut(strings.TrimSpace(rest), ":")
		if f := strings.Fields(name); len(f) == 1 {
			return f[0]
		}
	}
	q = strings.Join(strings.Fields(q), " ")
	if len(q) > 40 {
		q = q[:40] + "…"
	}
	return q
}

// Stop ends sampling and summarises it: the average number of active
// backends, each statement's share of the active samples (largest first),
// and the share spent waiting, by wait event (type:name).
func (a *ActivitySampler) Stop() string {
	a.cancel()
	<-a.done
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.samples == 0 || a.active == 0 {
		return "no active backend seen"
	}
	share := func(m map[string]int) string {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(x, y string) int { return m[y] - m[x] })
		var parts []string
		for _, k := range keys {
			if p := 100 * float64(m[k]) / float64(a.active); p >= 1 {
				parts = append(parts, fmt.Sprintf("%s %.0f%%", k, p))
			}
		}
		return strings.Join(parts, ", ")
	}
	s := fmt.Sprintf("%.2f active backends on average over %d samples; by statement: %s", float64(a.active)/float64(a.samples), a.samples, share(a.byQuery))
	if len(a.waiting) > 0 {
		s += "; waiting on: " + share(a.waiting)
	}
	return s
}
