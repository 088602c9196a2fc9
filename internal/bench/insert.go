package bench

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/leads"
)

// outboxPayloadSQL is the trigger's payload expression over a row n that has
// the leads columns and eid (the event id): the floor variant writes the
// same outbox row the trigger writes.
const outboxPayloadSQL = `jsonb_strip_nulls(jsonb_build_object(
  'eventId', n.eid, 'leadId', n.id, 'externalId', nullif(n.external_id, ''), 'firstName', nullif(n.first_name, ''),
  'lastName', nullif(n.last_name, ''), 'email', nullif(n.email, ''), 'company', nullif(n.company, ''),
  'title', nullif(n.title, ''), 'phone', nullif(n.phone, ''), 'leadSource', nullif(n.lead_source, ''),
  'status', nullif(n.status, ''), 'country', nullif(n.country, ''), 'annualRevenue', n.annual_revenue,
  'numberOfEmployees', n.number_of_employees, 'description', nullif(n.description, ''),
  'createdAt', to_char(n.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')))`

// floorInsertSQL: the app writes the lead (into leads_no_outbox, no
// trigger) and its outbox row itself, in one statement.
func floorInsertSQL() string {
	ins := InsertSQL("leads_no_outbox")
	ins = ins[:len(ins)-len(" RETURNING id")] + " RETURNING *"
	return `WITH l AS (` + ins + `)
INSERT INTO outbox (event_id, event_name, user_id, lead_id, payload)
SELECT n.eid, 'Lead Created', n.owner_id, n.id, ` + outboxPayloadSQL + `
FROM (SELECT l.*, outbox_uuidv7() AS eid FROM l OFFSET 0) AS n
RETURNING lead_id`
}

// floorCopySQL: after a COPY into leads_no_outbox, the app writes the
// outbox rows of the leads it just copied (ids above $1), in the same
// transaction.
const floorCopySQL = `INSERT INTO outbox (event_id, event_name, user_id, lead_id, payload)
SELECT n.eid, 'Lead Created', n.owner_id, n.id, ` + outboxPayloadSQL + `
FROM (SELECT l.*, outbox_uuidv7() AS eid FROM leads_no_outbox AS l WHERE l.id > $1 ORDER BY l.id OFFSET 0) AS n`

// insertVariant is one way of writing leads.
type insertVariant struct {
	label  string
	insert string                                                                    // one-lead statement returning one row
	copyFn func(ctx context.Context, pool *pgxpool.Pool, data []byte) (int64, error) // COPY of a leads CSV
}

// runInsert: what the outbox costs the app. The same leads are written
// (a) by 8 concurrent writers with one INSERT per transaction for a fixed
// time, (b) by COPY of leads.csv, three ways, taking turns so that drift in
// machine load hits all alike:
//   - no outbox: into leads_no_outbox (LIKE leads INCLUDING ALL: same
//     columns, defaults, constraints and indexes, no trigger);
//   - outbox: into leads, whose trigger writes the outbox rows;
//   - floor: into leads_no_outbox, and the app writes the same outbox rows
//     itself in the same statement (INSERT) or transaction (COPY): what the
//     outbox row costs without any trigger.
//
// Besides leads/s it reports the database CPU per lead of each (PGMeter:
// the scratch database's backends, from /proc), which does not depend on
// how busy the machine is.
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
	variants := []insertVariant{
		{"no outbox", InsertSQL("leads_no_outbox"), func(ctx context.Context, p *pgxpool.Pool, d []byte) (int64, error) {
			return copyCSV(ctx, p, "leads_no_outbox", d)
		}},
		{"outbox", InsertSQL("leads"), func(ctx context.Context, p *pgxpool.Pool, d []byte) (int64, error) {
			return copyCSV(ctx, p, "leads", d)
		}},
		{"floor", floorInsertSQL(), copyFloor},
	}
	stopProf := s.startProfile()
	defer stopProf()
	meter := func() (*PGMeter, error) { return StartPGMeter(ctx, s.opts.Config.DatabaseURL, db.Name) }

	s.progress("%d writers, one INSERT per transaction, %d x %s per variant", writers, rounds, phase)
	n := make([]int64, len(variants))
	d := make([]time.Duration, len(variants))
	cpu := make([]time.Duration, len(variants))
	for range rounds {
		for i, v := range variants {
			m, err := meter()
			if err != nil {
				return err
			}
			k, took, err := insertFor(ctx, db.Pool, s.leads, v.insert, writers, phase)
			u, merr := m.Stop(ctx)
			if err != nil {
				return err
			}
			if merr != nil {
				return merr
			}
			n[i] += k
			d[i] += took
			cpu[i] += u.Backends
		}
		if err := vacuumInsert(ctx, db.Pool); err != nil {
			return err
		}
	}
	for i, v := range variants {
		s.add("INSERT x8, "+v.label, Rate(n[i], d[i]), "leads/s", nil)
	}
	s.add("INSERT ratio", 100*Rate(n[1], d[1])/Rate(n[0], d[0]), "%", AtLeast(90))
	s.add("INSERT ratio, floor", 100*Rate(n[2], d[2])/Rate(n[0], d[0]), "%", nil)
	for i, v := range variants {
		s.add("INSERT DB CPU, "+v.label, float64(cpu[i].Microseconds())/float64(n[i]), "us/lead", nil)
	}

	s.progress("COPY of %d leads, %d times per variant", s.leads.Len(), copies)
	data := s.leads.CSV(s.leads.Len(), nil)
	clear(n)
	clear(d)
	clear(cpu)
	for range copies {
		for i, v := range variants {
			m, err := meter()
			if err != nil {
				return err
			}
			t0 := time.Now()
			k, err := v.copyFn(ctx, db.Pool, data)
			took := time.Since(t0)
			u, merr := m.Stop(ctx)
			if err != nil {
				return err
			}
			if merr != nil {
				return merr
			}
			d[i] += took
			n[i] += k
			cpu[i] += u.Backends
		}
		if err := vacuumInsert(ctx, db.Pool); err != nil {
			return err
		}
	}
	for i, v := range variants {
		s.add("COPY, "+v.label, Rate(n[i], d[i]), "leads/s", nil)
	}
	s.add("COPY ratio", 100*Rate(n[1], d[1])/Rate(n[0], d[0]), "%", AtLeast(50))
	s.add("COPY ratio, floor", 100*Rate(n[2], d[2])/Rate(n[0], d[0]), "%", nil)
	for i, v := range variants {
		s.add("COPY DB CPU, "+v.label, float64(cpu[i].Microseconds())/float64(n[i]), "us/lead", nil)
	}
	s.note("no outbox = leads_no_outbox (LIKE leads INCLUDING ALL); outbox = leads with its trigger; floor = the app writing the same outbox row itself (INSERT: one statement; COPY: an INSERT … SELECT after the COPY, one transaction). INSERT: %d writers, %d x %s per variant; COPY: %d x %d rows per variant; variants take turns; VACUUM ANALYZE after each round (autovacuum is off here)",
		writers, rounds, phase, copies, s.leads.Len())
	s.note("DB CPU = CPU of the scratch database's backends from /proc/<pid>/stat (10 ms ticks) over each variant's phases, per lead written")
	return nil
}

// vacuumInsert keeps dead tuples and stale statistics from piling up
// between rounds (autovacuum is off on the bench machine).
func vacuumInsert(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := pool.Exec(ctx, `VACUUM ANALYZE leads, leads_no_outbox, outbox`)
	return err
}

// copyFloor copies data into leads_no_outbox and writes the outbox rows
// of the copied leads with one INSERT … SELECT, in one transaction.
func copyFloor(ctx context.Context, pool *pgxpool.Pool, data []byte) (int64, error) {
	var rows int64
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var last int64
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM leads_no_outbox`).Scan(&last); err != nil {
			return err
		}
		tag, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(data), "COPY leads_no_outbox ("+leads.Columns+") FROM STDIN WITH (FORMAT csv, HEADER true)")
		if err != nil {
			return err
		}
		rows = tag.RowsAffected()
		otag, err := tx.Exec(ctx, floorCopySQL, last)
		if err != nil {
			return err
		}
		if otag.RowsAffected() != rows {
			return fmt.Errorf("floor COPY: %d outbox rows for %d leads", otag.RowsAffected(), rows)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("COPY (floor): %w", err)
	}
	return rows, nil
}

// insertFor runs `writers` goroutines, each running q (one lead, its own
// transaction) for dur, and returns how many leads they wrote and the time
// it took.
func insertFor(ctx context.Context, pool *pgxpool.Pool, l *Leads, q string, writers int, dur time.Duration) (int64, time.Duration, error) {
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
