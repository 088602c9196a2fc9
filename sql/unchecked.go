package sqlfiles

import (
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The statements below are the only SQL text in product Go outside the code
// sqlc generates from queries/. Each is here because sqlc cannot express it:
// sqlc compiles SELECT/INSERT/UPDATE/DELETE (and CTEs of them) with bind
// parameters, while these are utility statements that take no parameters
// (SET, COPY ... FROM STDIN), take an identifier rather than a value
// (CREATE/DROP DATABASE), or are a whole multi-statement script (roles.sql).
// Benchmarks and test helpers keep their own SQL next to them.

// SetJITOff turns JIT compilation off for the session. The relay runs it on
// every new connection (pgutil.NewPool, unless DATABASE_URL sets jit
// itself): with a large backlog the planner's estimates cross
// jit_above_cost and compiling costs more than the statement
// (docs/BENCHMARKS.md). SET takes no bind parameters, so sqlc cannot
// compile it.
const SetJITOff = "SET jit = off"

// SetSeqScanOff makes the planner avoid sequential scans for the session
// (a scan with no index left is still allowed, at a penalty). The relay runs
// it on every new connection of its pool (pgutil.NewPool NoSeqScan, unless
// DATABASE_URL sets enable_seqscan): pgx prepares the relay's statements,
// and after five runs PostgreSQL may keep a generic plan for good. Built
// while the outbox is empty or tiny (a fresh install), that plan reads the
// outbox sequentially, the cheapest way then, and keeps doing so as the
// outbox grows to millions of rows until something invalidates it (an
// ANALYZE or VACUUM of the table): measured, a claim of 500 at 40,000 rows
// took 540 ms with such a cached plan and 1.7 ms replanned
// (docs/BENCHMARKS.md, "Generic plans built on an empty outbox"). Every
// relay statement is meant to use an index (internal/outbox plan tests).
const SetSeqScanOff = "SET enable_seqscan = off"

// SetLockTimeout sets the session's lock_timeout to d, in whole
// milliseconds (pgutil.NewPool, RELAY_LOCK_TIMEOUT): a statement waiting
// longer than that for a lock fails instead of queueing behind, say, a
// migration. A SET, like SetJITOff.
func SetLockTimeout(d time.Duration) string {
	return fmt.Sprintf("SET lock_timeout = %d", d.Milliseconds())
}

// CopyLeadsCSV is the COPY that loads a CSV with a header row into leads,
// columns (a comma-separated list of leads columns) in the file's order.
// COPY ... FROM STDIN is a protocol of its own, not a query sqlc compiles.
func CopyLeadsCSV(columns string) string {
	return "COPY leads (" + columns + ") FROM STDIN WITH (FORMAT csv, HEADER true)"
}

// CreateDatabase creates the scratch database name (benchmarks, the demo,
// sqlc vet). A database name is an identifier, which no bind parameter can
// carry, so it is quoted here.
func CreateDatabase(name string) string {
	return "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
}

// DropDatabase drops database name if it exists, ending its sessions
// (WITH (FORCE)); quoted like CreateDatabase.
func DropDatabase(name string) string {
	return "DROP DATABASE IF EXISTS " + pgx.Identifier{name}.Sanitize() + " WITH (FORCE)"
}

// Roles returns roles.sql: the script a DBA runs once per database (after
// `outbox-relay migrate up`, as the tables' owner or a superuser) to create
// the group roles outbox_app, outbox_relay, outbox_operator and
// outbox_operator_write and grant each the least it needs on the objects in
// current_schema(). It is plain SQL without psql meta-commands, so it runs
// as one simple-protocol Exec as well as with `psql -f`. The file's header
// documents every privilege and why. A script of DO blocks and GRANTs is not
// a query sqlc compiles.
func Roles() string {
	b, err := files.ReadFile("roles.sql")
	if err != nil {
		panic("sqlfiles: roles.sql is not embedded: " + err.Error())
	}
	return string(b)
}
