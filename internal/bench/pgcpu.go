package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// clockTick is the unit of utime/stime in /proc/<pid>/stat (USER_HZ, 100 on
// Linux on every architecture Go supports).
const clockTick = 10 * time.Millisecond

// procCPU reads the user+system CPU time of process pid from
// /proc/<pid>/stat, and, when children is set, adds the CPU of its children
// that it reaped (cutime+cstime).
func procCPU(pid int, children bool) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b), children)
}

// parseStatCPU takes utime and stime (fields 14 and 15) from the text of a
// /proc/<pid>/stat, and cutime and cstime (16, 17) with children. The
// command name (field 2) may hold spaces and parentheses, so fields are
// counted after its last ')'.
func parseStatCPU(stat string, children bool) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc stat: no command name in %q", stat)
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3 (state)
	if len(f) < 15 {
		return 0, fmt.Errorf("/proc stat: %d fields after the command name, want at least 15", len(f))
	}
	last := 12 // f[i] is field i+3: utime is f[11], stime f[12]
	if children {
		last = 14 // cutime f[13], cstime f[14]
	}
	var ticks int64
	for _, s := range f[11 : last+1] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}

// parentPID reads field 4 (ppid) of /proc/<pid>/stat.
func parentPID(pid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 2 {
		return 0, fmt.Errorf("/proc/%d/stat: too short", pid)
	}
	return strconv.Atoi(f[1])
}

// selfCPU is this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// PGMeter measures what Postgres spends on one database during a phase:
//
//   - Backends: CPU of the server processes connected to that database,
//     read from /proc/<pid>/stat of each backend pid listed in
//     pg_stat_activity (polled every 100 ms; a backend that appears during
//     the phase counts from zero, one that exits counts up to its last
//     poll). Other sessions on a shared server do not count.
//   - Aux: CPU of the WAL writer, checkpointer and background writer during
//     the phase. These serve the whole server, so on a shared server this is
//     an upper bound of the phase's share.
//   - Server: CPU of every child of the postmaster plus the postmaster's
//     reaped-children counters: everything the server did, whoever asked.
//   - WAL: pg_current_wal_lsn() at the end minus at the start, also
//     server-wide (PostgreSQL 15 has no per-database WAL counter). The meter
//     starts with a CHECKPOINT, so every phase pays its own full-page images.
//
// It must run on the Postgres host (it reads /proc) and queries through its
// own connection to another database, so its polling is not counted.
type PGMeter struct {
	pool   *pgxpool.Pool
	db     string
	start  time.Time
	lsn0   string
	aux    map[int]time.Duration
	pm     int
	server time.Duration
	self0  time.Duration

	mu      sync.Mutex
	base    map[int]time.Duration // backend pid -> CPU at the start (0 if new)
	last    map[int]time.Duration // backend pid -> CPU at the last poll
	cancel  context.CancelFunc
	done    chan struct{}
	pollErr error
}

// PGUsage is what a PGMeter measured.
type PGUsage struct {
	Elapsed  time.Duration
	Backends time.Duration // CPU of the database's backends
	Aux      time.Duration // WAL writer + checkpointer + background writer
	Server   time.Duration // every server process (shared server: includes others)
	WAL      int64         // bytes, server-wide
	Self     time.Duration // CPU of this (bench) process
	Pids     int           // backends seen
}

// StartPGMeter starts measuring database db; adminURL must name another
// database of the same server (e.g. DATABASE_URL's).
func StartPGMeter(ctx context.Context, adminURL, db string) (*PGMeter, error) {
	pc, err := pgxpool.ParseConfig(adminURL)
	if err != nil {
		return nil, err
	}
	pc.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, err
	}
	// Start both sides of a comparison from a checkpoint: the first change
	// to each page after a checkpoint writes the whole page to WAL, so a
	// checkpoint falling inside one side's phase would inflate its WAL.
	if _, err := pool.Exec(ctx, `CHECKPOINT`); err != nil {
		pool.Close()
		return nil, fmt.Errorf("pg meter: CHECKPOINT (needs superuser or pg_checkpoint): %w", err)
	}
	m := &PGMeter{pool: pool, db: db, aux: map[int]time.Duration{}, base: map[int]time.Duration{}, last: map[int]time.Duration{}, done: make(chan struct{})}
	rows, err := pool.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE backend_type IN ('walwriter', 'checkpointer', 'background writer')`)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("pg meter: %w", err)
	}
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			rows.Close()
			pool.Close()
			return nil, err
		}
		m.aux[pid] = 0
	}
	rows.Close()
	for pid := range m.aux {
		c, err := procCPU(pid, false)
		if err != nil {
			pool.Close()
			return nil, fmt.Errorf("pg meter: the Postgres server's processes are not readable in /proc (is it on this host?): %w", err)
		}
		m.aux[pid] = c
		if m.pm == 0 {
			m.pm, _ = parentPID(pid)
		}
	}
	m.server = serverCPU(m.pm)
	if err := m.poll(ctx, true); err != nil {
		pool.Close()
		return nil, err
	}
	if err := pool.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&m.lsn0); err != nil {
		pool.Close()
		return nil, err
	}
	m.start = time.Now()
	m.self0 = selfCPU()
	pctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() {
		defer close(m.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-pctx.Done():
				return
			case <-t.C:
				if err := m.poll(pctx, false); err != nil && pctx.Err() == nil {
					m.mu.Lock()
					m.pollErr = err
					m.mu.Unlock()
				}
			}
		}
	}()
	return m, nil
}

// serverCPU sums the CPU of every child of the postmaster pm and the
// postmaster's own and reaped-children counters.
func serverCPU(pm int) time.Duration {
	if pm == 0 {
		return 0
	}
	total, _ := procCPU(pm, true)
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp, err := parentPID(pid); err == nil && pp == pm {
			c, _ := procCPU(pid, false)
			total += c
		}
	}
	return total
}

// poll reads the CPU of the database's current backends.
func (m *PGMeter) poll(ctx context.Context, first bool) error {
	rows, err := m.pool.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = $1`, m.db)
	if err != nil {
		return err
	}
	var pids []int
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			rows.Close()
			return err
		}
		pids = append(pids, pid)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, pid := range pids {
		c, err := procCPU(pid, false)
		if err != nil {
			continue // exited since the query
		}
		if _, seen := m.base[pid]; !seen {
			if first {
				m.base[pid] = c
			} else {
				m.base[pid] = 0
			}
		}
		m.last[pid] = max(m.last[pid], c)
	}
	return nil
}

// Stop ends the measurement and returns the usage since the start.
func (m *PGMeter) Stop(ctx context.Context) (PGUsage, error) {
	defer m.pool.Close()
	m.cancel()
	<-m.done
	u := PGUsage{Elapsed: time.Since(m.start), Self: selfCPU() - m.self0}
	if err := m.poll(ctx, false); err != nil {
		return u, err
	}
	var lsn1 string
	if err := m.pool.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&lsn1); err != nil {
		return u, err
	}
	if err := m.pool.QueryRow(ctx, `SELECT pg_wal_lsn_diff($1::pg_lsn, $2::pg_lsn)::bigint`, lsn1, m.lsn0).Scan(&u.WAL); err != nil {
		return u, err
	}
	for pid, c0 := range m.aux {
		if c, err := procCPU(pid, false); err == nil {
			u.Aux += c - c0
		}
	}
	u.Server = serverCPU(m.pm) - m.server
	m.mu.Lock()
	defer m.mu.Unlock()
	for pid, c := range m.last {
		u.Backends += c - m.base[pid]
	}
	u.Pids = len(m.last)
	return u, m.pollErr
}
