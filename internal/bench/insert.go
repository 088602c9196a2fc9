package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// runInsert: what the outbox trigger costs the app. The same leads are
// written into leads (trigger: one outbox row per lead) and into
// leads_no_outbox (LIKE leads INCLUDING ALL: same columns, defaults,
// constraints and indexes, no trigger), (a) by 8 concurrent writers with one
// INSERT per transaction for a fixed time, (b) by COPY of leads.csv. The two
// tables take turns, so drift in machine load hits both alike.
func runInsert(ctx context.Context, s *scenario) error {
	const writers = 8
	phase := pick(s, 5*time.Second, time.Second)
	rounds := pick(s, 2, 1)
	copies := pick(s, 3, 1)
	db, err := s.scratch(ctx, writers+2)
	if err != nil {
		return err
	}
	if _, err := db.Pool.Exec(ctx, `CREATE TABLE leads_no_outbox (LIKE leads INCLUDING ALL)`); err != nil {
		return err
	}
	tables := []string{"leads_no_outbox", "leads"}
	stopProf := s.startProfile()
	defer stopProf()

	s.progress("%d writers, one INSERT per transaction, %d x %s per table", writers, rounds, phase)
	var n [2]int64
	var d [2]time.Duration
	for range rounds {
		for i, t := range tables {
			k, took, err := insertFor(ctx, db.Pool, s.leads, t, writers, phase)
			if err != nil {
				return err
			}
			n[i] += k
			d[i] += took
		}
	}
	without, with := Rate(n[0], d[0]), Rate(n[1], d[1])
	s.add("INSERT x8, no trigger", without, "leads/s", nil)
	s.add("INSERT x8, outbox", with, "leads/s", nil)
	s.add("INSERT ratio", 100*with/without, "%", AtLeast(90))

	s.progress("COPY of %d leads, %d times per table", s.leads.Len(), copies)
	data := s.leads.CSV(s.leads.Len(), nil)
	n, d = [2]int64{}, [2]time.Duration{}
	for range copies {
		for i, t := range tables {
			t0 := time.Now()
			k, err := copyCSV(ctx, db.Pool, t, data)
			if err != nil {
				return err
			}
			d[i] += time.Since(t0)
			n[i] += k
		}
	}
	without, with = Rate(n[0], d[0]), Rate(n[1], d[1])
	s.add("COPY, no trigger", without, "leads/s", nil)
	s.add("COPY, outbox", with, "leads/s", nil)
	s.add("COPY ratio", 100*with/without, "%", AtLeast(90))
	s.note("no trigger = leads_no_outbox (LIKE leads INCLUDING ALL); INSERT: %d writers, %d x %s per table, alternating; COPY: %d x %d rows per table, alternating",
		writers, rounds, phase, copies, s.leads.Len())
	return nil
}

// insertFor runs `writers` goroutines inserting one lead per statement
// (autocommit: one transaction each) into table for dur, and returns how
// many leads they wrote and the time it took.
func insertFor(ctx context.Context, pool *pgxpool.Pool, l *Leads, table string, writers int, dur time.Duration) (int64, time.Duration, error) {
	q := InsertSQL(table)
	var count atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	start := time.Now()
	deadline := start.Add(dur)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; time.Now().Before(deadline); i += writers {
				var id int64
				if err := pool.QueryRow(ctx, q, l.Args(i, "")...).Scan(&id); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				count.Add(1)
			}
		}()
	}
	wg.Wait()
	return count.Load(), time.Since(start), firstErr
}
