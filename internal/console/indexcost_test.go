package console

import (
	"context"
	"fmt"
	"os"
	osexec "os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/outbox"
	"github.com/paragon-outbox/outbox-relay/internal/testdb"
)

// TestIndexCost measures what the console's indexes cost the write path,
// side by side in one run (docs/CONSOLE.md): lead inserts (the trigger
// writes the outbox row)
// (outbox_user_id_settled, outbox_event_name_settled, migration 00017: the
// predicate check only, the new row is pending; before 00017 the
// non-partial outbox_user_id and outbox_event_name took one more B-tree
// entry each; outbox_created_at_brin: a summary update at most) and attempt records
// (outbox_attempts_failed_started_at holds only failed
// attempts: a successful record pays the predicate check). Each round runs
// with and without the index, alternating; the best of the rounds is kept.
// Run: CONSOLE_INDEX_COST=1 go test -run TestIndexCost -v ./internal/console/
func TestIndexCost(t *testing.T) {
	if os.Getenv("CONSOLE_INDEX_COST") == "" {
		t.Skip("a measurement, not a check: set CONSOLE_INDEX_COST=1 to run it")
	}
	db := testdb.New(t)
	ctx := context.Background()
	exec := func(q string) time.Duration {
		start := time.Now()
		if _, err := db.Pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return time.Since(start)
	}
	const leads = 20000
	insertLeads := `INSERT INTO leads (owner_id, first_name, email) SELECT 'usr_' || (i % 500), 'Ada', 'ada@example.com' FROM generate_series(1, 20000) AS i`
	recordOK := `INSERT INTO outbox_attempts (outbox_id, attempt, relay_id, started_at, finished_at, http_status)
	             SELECT id, 1000 + (SELECT coalesce(max(attempt), 0) FROM outbox_attempts WHERE outbox_id = o.id), 'r', now(), now(), 200 FROM outbox o LIMIT 20000`
	recordFail := `INSERT INTO outbox_attempts (outbox_id, attempt, relay_id, started_at, finished_at, http_status, error)
	             SELECT id, 1000 + (SELECT coalesce(max(attempt), 0) FROM outbox_attempts WHERE outbox_id = o.id), 'r', now(), now(), 500, 'paragon answered 500' FROM outbox o LIMIT 20000`
	best := func(d, cur time.Duration) time.Duration {
		if cur == 0 || d < cur {
			return d
		}
		return cur
	}
	var with, without, okWith, okWithout, failWith, failWithout time.Duration
	exec(insertLeads) // warm up
	// The tables grow as rounds go, so the order alternates: odd rounds
	// measure with the indexes first.
	for round := 0; round < 6; round++ {
		for i := 0; i < 2; i++ {
			if (i == 0) == (round%2 == 0) {
				exec(`DROP INDEX IF EXISTS outbox_user_id_settled`)
				exec(`DROP INDEX IF EXISTS outbox_event_name_settled`)
				exec(`DROP INDEX IF EXISTS outbox_created_at_brin`)
				exec(`DROP INDEX IF EXISTS outbox_attempts_failed_started_at`)
				without = best(exec(insertLeads), without)
				okWithout = best(exec(recordOK), okWithout)
				failWithout = best(exec(recordFail), failWithout)
			} else {
				exec(createUserIDSettled)
				exec(createEventNameSettled)
				exec(`CREATE INDEX IF NOT EXISTS outbox_created_at_brin ON outbox USING brin (created_at)`)
				exec(`CREATE INDEX IF NOT EXISTS outbox_attempts_failed_started_at ON outbox_attempts (started_at) WHERE error IS NOT NULL`)
				with = best(exec(insertLeads), with)
				okWith = best(exec(recordOK), okWith)
				failWith = best(exec(recordFail), failWith)
			}
		}
	}
	// Size per row: what each index adds per settled event, independent
	// of load (the rows here are all pending: settle them first).
	exec(createUserIDSettled)
	exec(createEventNameSettled)
	exec(`CREATE INDEX IF NOT EXISTS outbox_created_at_brin ON outbox USING brin (created_at)`)
	exec(`UPDATE outbox SET status = 'delivered', delivered_at = now()`)
	exec(`REINDEX TABLE outbox`)
	var rows int64
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	for _, ix := range []string{"outbox_pkey", "outbox_user_id_settled", "outbox_event_name_settled", "outbox_created_at_brin"} {
		var size int64
		if err := db.Pool.QueryRow(ctx, `SELECT pg_relation_size($1::regclass)`, ix).Scan(&size); err != nil {
			t.Fatal(err)
		}
		t.Logf("%-24s %6.1f bytes per outbox row (%d rows)", ix, float64(size)/float64(rows), rows)
	}
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / leads }
	t.Logf("lead insert (trigger writes outbox), %d per statement, best of 6:", leads)
	t.Logf("  without the three console indexes (00012, 00017) %.1f µs/lead, with %.1f µs/lead: x%.3f", per(without), per(with), float64(with)/float64(without))
	t.Logf("successful attempt record: without the failed-attempts index %.1f µs, with %.1f µs: x%.3f", per(okWithout), per(okWith), float64(okWith)/float64(okWithout))
	t.Logf("failed attempt record:     without the failed-attempts index %.1f µs, with %.1f µs: x%.3f", per(failWithout), per(failWith), float64(failWith)/float64(failWithout))
}

// The console's user and event-name indexes as migration 00017 makes
// them, and as 00012 made them before.
const (
	createUserIDSettled    = `CREATE INDEX IF NOT EXISTS outbox_user_id_settled ON outbox (user_id) WHERE status IN ('delivered', 'dead', 'skipped')`
	createEventNameSettled = `CREATE INDEX IF NOT EXISTS outbox_event_name_settled ON outbox (event_name) WHERE status IN ('delivered', 'dead', 'skipped')`
	createUserIDAll        = `CREATE INDEX IF NOT EXISTS outbox_user_id ON outbox (user_id)`
	createEventNameAll     = `CREATE INDEX IF NOT EXISTS outbox_event_name ON outbox (event_name)`
)

// TestIndexWAL measures the WAL each delivered event writes on the relay's
// path with the console's user and event-name indexes of migration 00017
// (partial, settled events only) and with the non-partial ones of 00012
// they replaced: in a fresh database each, 20,000 leads are inserted (the
// trigger writes 20,000 pending Lead Created events), then drained through
// the relay's own statements (outbox.Store Claim, 500 at a time, and Record
// as delivered, as the relay calls them; no HTTP), each phase after a
// CHECKPOINT, WAL = pg_current_wal_lsn() after minus before, the least of
// three rounds. Bytes, not time: the LSN is server-wide, so other sessions'
// writes during a round add to it, but the least of three rounds repeats
// to the byte per event unless every round was disturbed.
// With CONSOLE_WAL_DIR set to the server's pg_wal directory (the test then
// runs on the database server's host, with pg_waldump on PATH and read
// access to the directory), each window's WAL is instead read with
// pg_waldump and only the records of this test's database and its
// transactions are counted: exact, whatever else the server is doing.
// Run: CONSOLE_INDEX_COST=1 go test -run TestIndexWAL -v ./internal/console/
func TestIndexWAL(t *testing.T) {
	if os.Getenv("CONSOLE_INDEX_COST") == "" {
		t.Skip("a measurement, not a check: set CONSOLE_INDEX_COST=1 to run it")
	}
	const leads = 20000
	type wal struct{ insert, claim, record int64 }
	walDir := os.Getenv("CONSOLE_WAL_DIR")
	if walDir != "" {
		t.Logf("WAL of this test's databases only, from pg_waldump -p %s", walDir)
	}
	measure := func(old bool) wal {
		db := testdb.New(t)
		ctx := context.Background()
		exec := func(q string) {
			if _, err := db.Pool.Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		if old {
			exec(createUserIDAll)
			exec(createEventNameAll)
			exec(`DROP INDEX outbox_user_id_settled`)
			exec(`DROP INDEX outbox_event_name_settled`)
		}
		lsn := func() string {
			var l string
			if err := db.Pool.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&l); err != nil {
				t.Fatal(err)
			}
			return l
		}
		since := func(from string) int64 {
			var n int64
			if err := db.Pool.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::bigint`, from).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		if walDir != "" {
			var oid uint32
			if err := db.Pool.QueryRow(ctx, `SELECT oid FROM pg_database WHERE datname = current_database()`).Scan(&oid); err != nil {
				t.Fatal(err)
			}
			since = func(from string) int64 { return dbWAL(t, walDir, from, lsn(), oid) }
		}
		var w wal
		exec(`CHECKPOINT`)
		l0 := lsn()
		exec(fmt.Sprintf(`INSERT INTO leads (owner_id, first_name) SELECT 'u' || (g %% 200), 'x' FROM generate_series(1, %d) AS g`, leads))
		w.insert = since(l0)
		exec(`CHECKPOINT`)
		st := outbox.New(db.Pool)
		delivered := 0
		for delivered < leads {
			l := lsn()
			evs, err := st.Claim(ctx, "relay-wal", 500, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			w.claim += since(l)
			if len(evs) == 0 {
				t.Fatalf("claim found nothing after %d of %d delivered", delivered, leads)
			}
			res := make([]outbox.Result, len(evs))
			now := time.Now()
			for i, e := range evs {
				res[i] = outbox.Result{ID: e.ID, Attempt: e.Attempt, Outcome: outbox.OutcomeDelivered, HTTPStatus: 200,
					Started: now, Finished: now, Keyed: e.Keyed}
			}
			l = lsn()
			moved, err := st.Record(ctx, "relay-wal", res)
			if err != nil {
				t.Fatal(err)
			}
			w.record += since(l)
			delivered += len(moved)
		}
		return w
	}
	// Other sessions can only add WAL between two LSN readings, never take
	// it away: the least of three rounds (alternating) is the figure.
	least := func(a, b int64) int64 {
		if a == 0 || b < a {
			return b
		}
		return a
	}
	var best [2]wal
	for round := 0; round < 3; round++ {
		for i := range best {
			w := measure(i == 0)
			best[i] = wal{least(best[i].insert, w.insert), least(best[i].claim, w.claim), least(best[i].record, w.record)}
		}
	}
	per := func(n int64) float64 { return float64(n) / leads }
	for i, name := range []string{"non-partial outbox_user_id, outbox_event_name (00012)", "settled-only outbox_user_id_settled, outbox_event_name_settled (00017)"} {
		w := best[i]
		t.Logf("%s: WAL per delivered event: lead insert %.0f B, claim %.0f B, record %.0f B; claim+record %.0f B, all three %.0f B",
			name, per(w.insert), per(w.claim), per(w.record), per(w.claim+w.record), per(w.insert+w.claim+w.record))
	}
}

var (
	walRecord = regexp.MustCompile(`len \(rec/tot\):\s*(\d+)/\s*(\d+), tx:\s*(\d+),`)
	walRel    = regexp.MustCompile(`rel \d+/(\d+)/\d+`)
)

// dbWAL returns the bytes of WAL (records and their full-page images)
// between LSNs from and to that belong to database oid: the records of its
// relations and every record of a transaction that wrote one (its commit).
func dbWAL(t *testing.T, dir, from, to string, oid uint32) int64 {
	t.Helper()
	if from == to {
		return 0
	}
	out, err := osexec.Command("pg_waldump", "-p", dir, "-s", from, "-e", to).Output()
	if err != nil {
		t.Fatalf("pg_waldump -s %s -e %s: %v", from, to, err)
	}
	db := strconv.FormatUint(uint64(oid), 10)
	type rec struct {
		tx   string
		size int64
		ours bool
	}
	var recs []rec
	txs := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		m := walRecord.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		size, _ := strconv.ParseInt(m[2], 10, 64)
		r := rec{tx: m[3], size: size}
		for _, rm := range walRel.FindAllStringSubmatch(line, -1) {
			r.ours = r.ours || rm[1] == db
		}
		if r.ours && r.tx != "0" {
			txs[r.tx] = true
		}
		recs = append(recs, r)
	}
	var n int64
	for _, r := range recs {
		if r.ours || txs[r.tx] {
			n += r.size
		}
	}
	return n
}
