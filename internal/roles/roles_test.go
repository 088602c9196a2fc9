// Package roles_test proves the least-privilege setup: sql/roles.sql (the
// group roles outbox_app, outbox_relay, outbox_operator and
// outbox_operator_write) together with migration 00003 (the outbox trigger
// runs as its owner, with a pinned search_path).
//
// Each test runs roles.sql as the superuser on its own database, logs in as
// fresh LOGIN members of the group roles and runs the real code as them: the
// app's INSERT and COPY, the relay's statements (internal/outbox,
// internal/migrate.Check, internal/operator.Purge) and the relay itself
// against the local Paragon endpoint, and every operator query and tool. What
// a role must not do fails with insufficient_privilege (42501).
//
// Roles are cluster-wide and other packages' tests share the server: every
// login made here has a name unique to its test database and is dropped
// after that database; the shared group roles are never dropped.
package roles_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/leads"
	"github.com/paragon-outbox/outbox-relay/internal/migrate"
	"github.com/paragon-outbox/outbox-relay/internal/operator"
	"github.com/paragon-outbox/outbox-relay/internal/operator/operatortest"
	"github.com/paragon-outbox/outbox-relay/internal/outbox"
	"github.com/paragon-outbox/outbox-relay/internal/paragontest"
	"github.com/paragon-outbox/outbox-relay/internal/relay"
	"github.com/paragon-outbox/outbox-relay/internal/status"
	"github.com/paragon-outbox/outbox-relay/internal/testdb"
	"github.com/paragon-outbox/outbox-relay/internal/testutil"
	sqlfiles "github.com/paragon-outbox/outbox-relay/sql"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// insufficientPrivilege is SQLSTATE 42501, "permission denied for ...".
const insufficientPrivilege = "42501"

// sampleCSV has 100 leads in the leads.csv layout.
const sampleCSV = "../../testdata/leads-sample.csv"

// env is a migrated database on which roles.sql ran, with a pool per role.
type env struct {
	db *testdb.Database // superuser: fixtures and checks
	// Logins that are members of outbox_app, outbox_relay, outbox_operator,
	// and outbox_operator_write (which includes outbox_operator).
	app, relay, operator, operatorWrite *pgxpool.Pool
}

// logins collects the LOGIN roles a test creates and drops them when the
// test ends. newLogins must be called before the test's databases are
// created: cleanups run last-registered first, so the databases are dropped
// (closing every session and removing every object and grant of those
// roles) before DROP ROLE runs, which then cannot fail on dependencies.
type logins struct {
	mu    sync.Mutex
	names []string
}

func newLogins(t *testing.T) *logins {
	t.Helper()
	l := &logins{}
	t.Cleanup(func() { dropRoles(t, l.names) })
	return l
}

// connect creates a LOGIN role name, member of groups, with a random
// password (trust or password authentication both work), and returns a pool
// on db as that role with the given run-time parameters.
func (l *logins) connect(t *testing.T, db *testdb.Database, name string, params map[string]string, groups ...string) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	l.mu.Lock()
	l.names = append(l.names, name)
	l.mu.Unlock()
	var b [16]byte
	_, _ = rand.Read(b[:])
	password := hex.EncodeToString(b[:])
	stmt := fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", pgx.Identifier{name}.Sanitize(), password)
	if len(groups) > 0 {
		ids := make([]string, len(groups))
		for i, g := range groups {
			ids[i] = pgx.Identifier{g}.Sanitize()
		}
		stmt += " IN ROLE " + strings.Join(ids, ", ")
	}
	if _, err := db.Pool.Exec(ctx, stmt); err != nil {
		t.Fatalf("create login %s: %v", name, err)
	}
	cfg, err := pgxpool.ParseConfig(withUser(db.URL, name, password))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range params {
		cfg.ConnConfig.RuntimeParams[k] = v
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect as %s: %v", name, err)
	}
	t.Cleanup(pool.Close)
	if err := pool.Ping(ctx); err != nil {
		t.Fatalf("connect as %s: %v", name, err)
	}
	return pool
}

// withUser returns connString with its user and password replaced; URL and
// key=value forms.
func withUser(connString, user, password string) string {
	if strings.HasPrefix(connString, "postgres://") || strings.HasPrefix(connString, "postgresql://") {
		u, err := url.Parse(connString)
		if err == nil {
			u.User = url.UserPassword(user, password)
			return u.String()
		}
	}
	return connString + " user=" + user + " password=" + password
}

// dropRoles drops the given roles, connecting to the test server.
func dropRoles(t *testing.T, names []string) {
	if len(names) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, testdb.URL(t))
	if err != nil {
		t.Errorf("drop roles %v: %v", names, err)
		return
	}
	defer conn.Close(ctx)
	for _, n := range names {
		if _, err := conn.Exec(ctx, "DROP ROLE IF EXISTS "+pgx.Identifier{n}.Sanitize()); err != nil {
			t.Errorf("drop role %s (left on the server): %v", n, err)
		}
	}
}

// applyRoles runs roles.sql through pool, as one simple-protocol Exec (what
// psql -f does statement by statement).
func applyRoles(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), sqlfiles.Roles()); err != nil {
		t.Fatalf("roles.sql: %v", err)
	}
}

func newEnv(t *testing.T) *env {
	t.Helper()
	l := newLogins(t)
	db := testdb.New(t)
	applyRoles(t, db.Pool)
	return &env{
		db:            db,
		app:           l.connect(t, db, "app_"+db.Name, nil, "outbox_app"),
		relay:         l.connect(t, db, "relay_"+db.Name, nil, "outbox_relay"),
		operator:      l.connect(t, db, "op_"+db.Name, nil, "outbox_operator"),
		operatorWrite: l.connect(t, db, "opw_"+db.Name, nil, "outbox_operator_write"),
	}
}

// isDenied reports whether err is insufficient_privilege.
func isDenied(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == insufficientPrivilege
}

// mustDeny runs each statement on pool and fails unless each is refused for
// lack of privilege.
func mustDeny(t *testing.T, who string, pool *pgxpool.Pool, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		_, err := pool.Exec(context.Background(), q)
		if !isDenied(err) {
			t.Errorf("%s: %s\n  got %v, want permission denied (42501)", who, q, err)
		}
	}
}

func scalar[T any](t *testing.T, pool *pgxpool.Pool, q string, args ...any) T {
	t.Helper()
	var v T
	if err := pool.QueryRow(context.Background(), q, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}

func insertLead(t *testing.T, pool *pgxpool.Pool, owner string) int64 {
	t.Helper()
	return scalar[int64](t, pool, `
		INSERT INTO leads (owner_id, first_name, last_name, email)
		VALUES ($1, 'Ada', 'Lovelace', 'ada@example.com') RETURNING id`, owner)
}

func copySample(t *testing.T, pool *pgxpool.Pool) int64 {
	t.Helper()
	f, err := os.Open(sampleCSV)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := leads.CopyCSV(context.Background(), pool, f)
	if err != nil {
		t.Fatalf("COPY leads: %v", err)
	}
	return n
}

// TestMigrationPinsTheTrigger: after the migrations the trigger function is
// SECURITY DEFINER with search_path pg_catalog, <schema>, pg_temp, and
// PUBLIC may not EXECUTE it.
func TestMigrationPinsTheTrigger(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	var definer bool
	var config []string
	var publicExec bool
	err := db.Pool.QueryRow(context.Background(), `
		SELECT p.prosecdef, p.proconfig,
		       EXISTS (SELECT FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) AS a
		               WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')
		FROM pg_proc AS p WHERE p.oid = 'lead_created_to_outbox()'::regprocedure`).Scan(&definer, &config, &publicExec)
	if err != nil {
		t.Fatal(err)
	}
	if !definer || !slices.Equal(config, []string{"search_path=pg_catalog, public, pg_temp"}) || publicExec {
		t.Fatalf("lead_created_to_outbox: security definer %v, config %q, PUBLIC may execute %v; want true, [search_path=pg_catalog, public, pg_temp], false",
			definer, config, publicExec)
	}
}

// TestAppInsertsLeadsButCannotTouchTheOutbox: the app's INSERT and COPY write
// the events through the trigger, and the app can neither read nor change
// the outbox tables.
func TestAppInsertsLeadsButCannotTouchTheOutbox(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()

	id := insertLead(t, e.app, "usr_app")
	if got := scalar[string](t, e.db.Pool, `SELECT user_id || ' ' || status FROM outbox WHERE lead_id = $1`, id); got != "usr_app pending" {
		t.Errorf("outbox row of the app's lead: %q, want usr_app pending", got)
	}
	n := copySample(t, e.app)
	if n != 100 {
		t.Errorf("COPY loaded %d leads, want 100", n)
	}
	if got := scalar[int64](t, e.db.Pool, `SELECT count(*) FROM leads AS l JOIN outbox AS o ON o.lead_id = l.id`); got != n+1 {
		t.Errorf("%d leads with an outbox row, want %d", got, n+1)
	}
	// The app keeps full use of its own table.
	for _, q := range []string{
		`UPDATE leads SET title = 'CTO' WHERE id = $1`,
		`DELETE FROM leads WHERE id = $1`,
	} {
		if _, err := e.app.Exec(ctx, q, id); err != nil {
			t.Errorf("app: %s: %v", q, err)
		}
	}
	// The trigger fired although the app may not EXECUTE its function:
	// EXECUTE is checked by CREATE TRIGGER, not when the trigger fires.
	if scalar[bool](t, e.app, `SELECT has_function_privilege('lead_created_to_outbox()', 'EXECUTE')`) {
		t.Error("the app may EXECUTE lead_created_to_outbox(); migration 00003 revokes it from PUBLIC")
	}
	mustDeny(t, "app", e.app,
		`SELECT count(*) FROM outbox`,
		`UPDATE outbox SET status = 'dead'`,
		`DELETE FROM outbox`,
		`INSERT INTO outbox (event_name, user_id, payload) VALUES ('Lead Created', 'u', '{}')`,
		`TRUNCATE outbox`,
		`SELECT count(*) FROM outbox_attempts`,
		`UPDATE outbox_attempts SET error = NULL`,
		`DELETE FROM outbox_attempts`,
		`INSERT INTO outbox_attempts (outbox_id, attempt, started_at) VALUES (1, 1, now())`,
		`SELECT count(*) FROM outbox_redrives`,
		`DELETE FROM outbox_redrives`,
		`SELECT count(*) FROM outbox_delivery_status`,
		`SELECT lead_created_to_outbox()`,
	)
	// COPY out of the outbox is a read too.
	conn, err := e.app.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Conn().PgConn().CopyTo(ctx, discard{}, `COPY outbox TO STDOUT`); !isDenied(err) {
		t.Errorf("app: COPY outbox TO STDOUT: %v, want permission denied", err)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// TestTriggerIgnoresTheSessionsSearchPath: a session's temporary schema is
// searched first for table names unless search_path places it; the pinned
// path puts pg_temp last, so a temporary table named outbox cannot capture
// the event, whatever search_path the inserting session sets.
func TestTriggerIgnoresTheSessionsSearchPath(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	conn, err := e.app.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for _, q := range []string{
		`CREATE TEMP TABLE outbox (event_id uuid, event_name text, user_id text, lead_id bigint, payload jsonb)`,
		`SET search_path = pg_temp, public`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var id int64
	if err := conn.QueryRow(ctx, `INSERT INTO public.leads (owner_id) VALUES ('usr_tmp') RETURNING id`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	var captured int64
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_temp.outbox`).Scan(&captured); err != nil {
		t.Fatal(err)
	}
	if captured != 0 {
		t.Errorf("the session's temporary outbox captured %d events", captured)
	}
	if got := scalar[int64](t, e.db.Pool, `SELECT count(*) FROM public.outbox WHERE lead_id = $1`, id); got != 1 {
		t.Errorf("%d rows in public.outbox for the lead, want 1", got)
	}
	if _, err := conn.Exec(ctx, `DROP TABLE pg_temp.outbox; RESET search_path`); err != nil {
		t.Fatal(err)
	}
}

// TestRelayRunsItsStatementsButCannotReadLeads runs every statement of the
// relay's state machine as the relay role, including the ON CONFLICT DO
// UPDATE branch of record_results and the retention purge.
func TestRelayRunsItsStatementsButCannotReadLeads(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	if err := migrate.Check(ctx, e.relay); err != nil {
		t.Fatalf("migrate.Check as the relay: %v", err)
	}
	for range 5 {
		insertLead(t, e.app, "usr_relay")
	}
	store := outbox.New(e.relay)
	g, err := store.ReadGauges(ctx)
	if err != nil || g.Pending != 5 {
		t.Fatalf("ReadGauges: %+v, %v; want 5 pending", g, err)
	}
	evs, err := store.Claim(ctx, "relay-a", 10, time.Minute)
	if err != nil || len(evs) != 5 {
		t.Fatalf("Claim: %d events, %v; want 5", len(evs), err)
	}
	slices.SortFunc(evs, func(a, b outbox.Event) int { return int(a.ID - b.ID) })
	ids := make([]int64, len(evs))
	for i, ev := range evs {
		ids[i] = ev.ID
	}
	if n, err := store.ExtendLeases(ctx, "relay-a", ids, 2*time.Minute); err != nil || n != 5 {
		t.Fatalf("ExtendLeases: %d, %v; want 5", n, err)
	}
	now := time.Now()
	result := func(ev outbox.Event, o outbox.Outcome, code int, msg string) outbox.Result {
		return outbox.Result{ID: ev.ID, Attempt: ev.Attempt, Outcome: o, HTTPStatus: code, Error: msg, Started: now, Finished: now}
	}
	moved, err := store.Record(ctx, "relay-a", []outbox.Result{
		result(evs[0], outbox.OutcomeDelivered, 201, ""),
		result(evs[1], outbox.OutcomeDelivered, 201, ""),
		result(evs[2], outbox.OutcomeRetry, 503, "paragon answered 503"), // due again at once (RetryDelay 0)
		result(evs[3], outbox.OutcomeDead, 422, "rejected, not retried: paragon answered 422"),
	})
	if err != nil || len(moved) != 4 {
		t.Fatalf("Record: moved %v, %v; want 4 rows", moved, err)
	}
	if n, err := store.Release(ctx, "relay-a", []outbox.Held{{ID: evs[4].ID, Attempt: evs[4].Attempt}}); err != nil || n != 1 {
		t.Fatalf("Release: %d, %v; want 1", n, err)
	}

	// relay-b claims the two due rows and "dies": its leases expire.
	again, err := store.Claim(ctx, "relay-b", 10, time.Minute)
	if err != nil || len(again) != 2 {
		t.Fatalf("second Claim: %d events, %v; want 2", len(again), err)
	}
	if _, err := e.db.Pool.Exec(ctx, `UPDATE outbox SET lease_expires_at = now() - interval '1 second' WHERE status = 'in_flight'`); err != nil {
		t.Fatal(err)
	}
	rescued, err := store.RescueExpired(ctx, 10, 25)
	if err != nil || len(rescued) != 2 {
		t.Fatalf("RescueExpired: %v, %v; want 2 rows", rescued, err)
	}
	// relay-b's late success for evs[2] replaces the attempt the rescue
	// logged as interrupted (ON CONFLICT DO UPDATE on outbox_attempts).
	var late outbox.Event
	for _, ev := range again {
		if ev.ID == evs[2].ID {
			late = ev
		}
	}
	if late.ID == 0 {
		t.Fatalf("second claim %+v lacks event %d", again, evs[2].ID)
	}
	moved, err = store.Record(ctx, "relay-b", []outbox.Result{result(late, outbox.OutcomeDelivered, 201, "")})
	if err != nil || len(moved) != 1 {
		t.Fatalf("late Record: moved %v, %v; want 1", moved, err)
	}
	if got := scalar[string](t, e.db.Pool, `
		SELECT coalesce(error, 'delivered') || ' ' || (finished_at IS NOT NULL)::text
		FROM outbox_attempts WHERE outbox_id = $1 AND attempt = $2`, late.ID, late.Attempt); got != "delivered true" {
		t.Errorf("attempt row after the late result: %q, want the real outcome", got)
	}

	// Retention: three delivered and one dead event, aged; a re-drive row
	// of the dead one goes by ON DELETE CASCADE (run as the table owner).
	if _, err := e.db.Pool.Exec(ctx, `
		UPDATE outbox SET delivered_at = now() - interval '2 hours' WHERE status = 'delivered';
		UPDATE outbox SET created_at = now() - interval '2 hours' WHERE status = 'dead';
		INSERT INTO outbox_redrives (outbox_id, redriven_by, previous_status, previous_attempts)
		SELECT id, 'test', 'dead', attempts FROM outbox WHERE status = 'dead'`); err != nil {
		t.Fatal(err)
	}
	deleted, err := operator.Purge(ctx, e.relay, time.Hour, time.Hour, 0)
	if err != nil || deleted != 4 {
		t.Fatalf("Purge as the relay: deleted %d, %v; want 4", deleted, err)
	}
	if got := scalar[string](t, e.db.Pool, `
		SELECT (SELECT count(*) FROM outbox)::text || ' ' ||
		       (SELECT count(*) FROM outbox_attempts AS a WHERE NOT EXISTS (SELECT FROM outbox AS o WHERE o.id = a.outbox_id))::text || ' ' ||
		       (SELECT count(*) FROM outbox_redrives)::text`); got != "1 0 0" {
		t.Errorf("after purge: outbox rows, orphaned attempts, re-drives = %s; want 1 0 0", got)
	}

	mustDeny(t, "relay", e.relay,
		`SELECT count(*) FROM leads`,
		`INSERT INTO leads (owner_id) VALUES ('usr_x')`,
		`UPDATE leads SET title = 'x'`,
		`DELETE FROM leads`,
		`COPY leads TO STDOUT`,
		`INSERT INTO outbox (event_name, user_id, payload) VALUES ('Lead Created', 'u', '{}')`,
		`UPDATE outbox SET payload = '{}'`,
		`UPDATE outbox SET user_id = 'someone else'`,
		`TRUNCATE outbox`,
		`UPDATE outbox_attempts SET started_at = now()`,
		`INSERT INTO outbox_redrives (outbox_id, redriven_by, previous_status, previous_attempts) VALUES (1, 'r', 'dead', 1)`,
		`DELETE FROM outbox_redrives`,
		`UPDATE goose_db_version SET is_applied = false`,
		`SELECT count(*) FROM outbox_delivery_status`,
	)
	if scalar[int](t, e.db.Pool, `SELECT current_setting('server_version_num')::int`) >= 150000 {
		// Before PostgreSQL 15, PUBLIC may CREATE in schema public.
		mustDeny(t, "relay", e.relay, `CREATE TABLE relay_scratch (id int)`)
	}
}

// TestRelayAsRelayRoleDeliversTheAppsLeads: the real relay, logged in as the
// relay role, delivers every lead the app role wrote (INSERT and COPY) to the
// local Paragon endpoint.
func TestRelayAsRelayRoleDeliversTheAppsLeads(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	p := paragontest.New(t, paragontest.Options{ProjectID: "roles-project"})
	srv, client := p.Server, p.Client

	want := copySample(t, e.app)
	for i := range 8 {
		insertLead(t, e.app, "usr_e2e_"+strconv.Itoa(i))
		want++
	}

	if err := migrate.Check(ctx, e.relay); err != nil {
		t.Fatalf("migrate.Check as the relay: %v", err)
	}
	r, err := relay.New(outbox.New(e.relay), client, relay.Config{
		RelayID: "relay-roles", Concurrency: 8, BatchSize: 50, PollInterval: 10 * time.Millisecond,
		Lease: 30 * time.Second, ShutdownGrace: 5 * time.Second, MaxAttempts: 10,
		BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()

	testutil.WaitSettled(t, e.db.Pool, want, time.Minute)
	if delivered := scalar[int64](t, e.db.Pool, `SELECT count(*) FROM outbox WHERE status = 'delivered'`); delivered != want {
		cancel()
		<-done
		t.Fatalf("%d of %d events delivered", delivered, want)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("relay Run: %v", err)
	}
	got := srv.CountByEventID()
	rows, err := e.db.Pool.Query(ctx, `SELECT event_id::text FROM outbox`)
	if err != nil {
		t.Fatal(err)
	}
	eventIDs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range eventIDs {
		if got[id] == 0 {
			t.Errorf("event %s is delivered in the outbox but Paragon never received it", id)
		}
	}
	if int64(len(got)) != want {
		t.Errorf("Paragon received %d distinct events, want %d", len(got), want)
	}
}

// psqlVar matches psql's quoted-literal interpolation, :'name' (as in
// sql/operator_test.go).
var psqlVar = regexp.MustCompile(`:'([A-Za-z_][A-Za-z0-9_]*)'`)

func substitute(t *testing.T, q string, vars map[string]string) string {
	t.Helper()
	return psqlVar.ReplaceAllStringFunc(q, func(m string) string {
		v, ok := vars[psqlVar.FindStringSubmatch(m)[1]]
		if !ok {
			t.Fatalf("operator query uses %s and the test gives no value", m)
		}
		return "'" + strings.ReplaceAll(v, "'", "''") + "'"
	})
}

// TestOperatorReadsAndOnlyOperatorWriteChanges: outbox_operator runs every
// operator query and read-only tool and can change nothing;
// outbox_operator_write can re-drive and purge, and still not touch leads.
func TestOperatorReadsAndOnlyOperatorWriteChanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	add := func(ev operatortest.Event) operatortest.Row { return operatortest.Add(t, e.db.Pool, ev) }
	dead := add(operatortest.Event{User: "usr_a", Status: "dead", Attempts: 2, LastError: "paragon answered 500", HTTPStatus: 500})
	add(operatortest.Event{User: "usr_a", Attempts: 1, LastError: "paragon answered 503", HTTPStatus: 503})
	add(operatortest.Event{User: "usr_b", Status: "in_flight", Attempts: 1, LeaseExpiresIn: -time.Minute})
	add(operatortest.Event{User: "usr_c", Status: "delivered", Attempts: 1, CreatedAgo: 3 * time.Hour, DeliveredAgo: 2 * time.Hour})

	if n := scalar[int64](t, e.operator, `SELECT count(*) FROM outbox_delivery_status`); n != 4 {
		t.Errorf("operator sees %d rows in outbox_delivery_status, want 4", n)
	}
	for _, name := range sqlfiles.OperatorNames() {
		q, err := sqlfiles.Operator(name)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := e.operator.Query(ctx, substitute(t, q, map[string]string{"lead_id": strconv.FormatInt(dead.LeadID, 10)}))
		if err == nil {
			for rows.Next() {
			}
			rows.Close()
			err = rows.Err()
		}
		if err != nil {
			t.Errorf("operator: sql/operator/%s.sql: %v", name, err)
		}
	}
	if _, err := status.Collect(ctx, e.operator, 10); err != nil {
		t.Errorf("operator: status: %v", err)
	}
	if _, err := operator.Inspect(ctx, e.operator, "lead:"+strconv.FormatInt(dead.LeadID, 10)); err != nil {
		t.Errorf("operator: inspect: %v", err)
	}
	if res, err := operator.Redrive(ctx, e.operator, operator.Filter{IDs: []int64{dead.ID}}, "", "", true); err != nil || res.Moved != 1 {
		t.Errorf("operator: retry -dry-run: %+v, %v; want 1 to move", res, err)
	}
	if _, _, err := operator.Purgeable(ctx, e.operator, time.Hour, time.Hour); err != nil {
		t.Errorf("operator: purge -dry-run: %v", err)
	}
	if err := migrate.Check(ctx, e.operator); err != nil {
		t.Errorf("operator: migrate.Check (doctor): %v", err)
	}
	if _, err := migrate.List(ctx, e.operator); err != nil {
		t.Errorf("operator: migrate.List (doctor, migrate status): %v", err)
	}

	if _, err := operator.Redrive(ctx, e.operator, operator.Filter{IDs: []int64{dead.ID}}, "mallory", "", false); !isDenied(err) {
		t.Errorf("operator: retry: %v, want permission denied", err)
	}
	if _, err := operator.Purge(ctx, e.operator, time.Hour, time.Hour, 0); !isDenied(err) {
		t.Errorf("operator: purge: %v, want permission denied", err)
	}
	mustDeny(t, "operator", e.operator,
		`UPDATE outbox SET status = 'pending' WHERE status = 'dead'`,
		`UPDATE outbox SET attempts_base = attempts`,
		`DELETE FROM outbox`,
		`INSERT INTO outbox_redrives (outbox_id, redriven_by, previous_status, previous_attempts) VALUES (1, 'm', 'dead', 1)`,
		`DELETE FROM outbox_attempts`,
		`UPDATE outbox_attempts SET error = NULL`,
		`INSERT INTO outbox_attempts (outbox_id, attempt, started_at) VALUES (1, 9, now())`,
		`SELECT count(*) FROM leads`,
		`SELECT 1 FROM outbox FOR UPDATE`,
	)

	// outbox_operator_write: re-drive (audited) and purge.
	res, err := operator.Redrive(ctx, e.operatorWrite, operator.Filter{IDs: []int64{dead.ID}}, "alice", "incident over", false)
	if err != nil || res.Moved != 1 {
		t.Fatalf("operator_write: retry: %+v, %v; want 1 moved", res, err)
	}
	if by := scalar[string](t, e.db.Pool, `SELECT redriven_by FROM outbox_redrives WHERE outbox_id = $1`, dead.ID); by != "alice" {
		t.Errorf("re-drive recorded by %q, want alice", by)
	}
	if n, err := operator.Purge(ctx, e.operatorWrite, time.Hour, time.Hour, 0); err != nil || n != 1 {
		t.Errorf("operator_write: purge: %d, %v; want the delivered event deleted", n, err)
	}
	mustDeny(t, "operator_write", e.operatorWrite,
		`SELECT count(*) FROM leads`,
		`UPDATE outbox SET payload = '{}'`,
		`UPDATE outbox SET lease_owner = 'm', lease_expires_at = now()`,
		`INSERT INTO outbox (event_name, user_id, payload) VALUES ('Lead Created', 'u', '{}')`,
		`UPDATE outbox_redrives SET redriven_by = 'someone else'`,
		`DELETE FROM outbox_redrives`,
		`TRUNCATE outbox`,
	)
}

// TestRolesScriptGrantsExactlyThis pins every privilege the group roles hold
// on the outbox objects, and shows that a re-run takes back privileges
// granted outside the script.
func TestRolesScriptGrantsExactlyThis(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	// Grants made by hand, outside the script; a re-run revokes them.
	if _, err := e.db.Pool.Exec(ctx, `
		GRANT TRUNCATE, INSERT ON outbox TO outbox_relay;
		GRANT UPDATE (payload) ON outbox TO outbox_relay;
		GRANT SELECT ON leads TO outbox_relay, outbox_operator;
		GRANT SELECT ON outbox TO outbox_app`); err != nil {
		t.Fatal(err)
	}
	applyRoles(t, e.db.Pool)
	applyRoles(t, e.db.Pool)

	objects := []string{"leads", "outbox", "outbox_attempts", "outbox_redrives", "outbox_delivery_status", "goose_db_version", "outbox_relays"}
	// want[role][object] = table-level privileges, then "UPDATE(...)" for
	// column-level UPDATE. Membership counts (operator_write includes operator).
	want := map[string]map[string]string{
		"outbox_app": {"leads": "SELECT INSERT UPDATE DELETE"},
		"outbox_relay": {
			"outbox":           "SELECT DELETE UPDATE(status,attempts,next_attempt_at,delivered_at,last_error,last_http_status,lease_owner,claimed_at,lease_expires_at,attempts_base)",
			"outbox_attempts":  "SELECT INSERT DELETE UPDATE(relay_id,finished_at,http_status,error)",
			"goose_db_version": "SELECT",
			"outbox_relays":    "SELECT INSERT UPDATE DELETE",
		},
		"outbox_operator": {
			"outbox": "SELECT", "outbox_attempts": "SELECT", "outbox_redrives": "SELECT",
			"outbox_delivery_status": "SELECT", "goose_db_version": "SELECT", "outbox_relays": "SELECT",
		},
		"outbox_operator_write": {
			"outbox":          "SELECT DELETE UPDATE(status,next_attempt_at,last_error,last_http_status,attempts_base)",
			"outbox_attempts": "SELECT DELETE", "outbox_redrives": "SELECT INSERT",
			"outbox_delivery_status": "SELECT", "goose_db_version": "SELECT", "outbox_relays": "SELECT",
		},
	}
	for role, objs := range want {
		for _, obj := range objects {
			got := scalar[string](t, e.db.Pool, `
				SELECT concat_ws(' ',
				  nullif(array_to_string(ARRAY(
				    SELECT p FROM unnest(ARRAY['SELECT','INSERT','UPDATE','DELETE','TRUNCATE','REFERENCES','TRIGGER']) WITH ORDINALITY AS u(p, i)
				    WHERE has_table_privilege($1, $2::regclass, p) ORDER BY i), ' '), ''),
				  'UPDATE(' || nullif(array_to_string(ARRAY(
				    SELECT attname FROM pg_attribute
				    WHERE attrelid = $2::regclass AND attnum > 0 AND NOT attisdropped
				      AND has_column_privilege($1, $2::regclass, attnum, 'UPDATE')
				      AND NOT has_table_privilege($1, $2::regclass, 'UPDATE')
				    ORDER BY attnum), ','), '') || ')')`, role, obj)
			if got != objs[obj] {
				t.Errorf("%s on %s: %q, want %q", role, obj, got, objs[obj])
			}
		}
	}
	// Members of the roles may connect and use the schema; nobody gets CREATE.
	for role := range want {
		if !scalar[bool](t, e.db.Pool, `SELECT has_database_privilege($1, current_database(), 'CONNECT') AND has_schema_privilege($1, 'public', 'USAGE')`, role) {
			t.Errorf("%s may not connect or use schema public", role)
		}
	}
	if !scalar[bool](t, e.db.Pool, `SELECT pg_has_role('outbox_operator_write', 'outbox_operator', 'MEMBER')`) {
		t.Error("outbox_operator_write is not a member of outbox_operator")
	}
}

// TestRolesScriptConcurrentFirstRuns: several databases of one cluster run
// the script at once while its roles do not exist yet (the script's role
// names are replaced by fresh ones for this test): every run succeeds.
func TestRolesScriptConcurrentFirstRuns(t *testing.T) {
	t.Parallel()
	prefix := fmt.Sprintf("rt%d_%d", os.Getpid(), time.Now().UnixNano()%1_000_000_000)
	names := []string{prefix + "_opw", prefix + "_op", prefix + "_relay", prefix + "_app"}
	script := strings.NewReplacer(
		"outbox_relays", "outbox_relays", // a table, not the role outbox_relay
		"outbox_operator_write", names[0], "outbox_operator", names[1], "outbox_relay", names[2], "outbox_app", names[3],
	).Replace(sqlfiles.Roles())
	l := newLogins(t)
	l.names = append(l.names, names...)
	dbs := []*testdb.Database{testdb.New(t), testdb.New(t), testdb.New(t)}

	const runs = 6
	conns := make([]*pgx.Conn, runs)
	for i := range conns {
		c, err := pgx.Connect(context.Background(), dbs[i%len(dbs)].URL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close(context.Background()) })
		conns[i] = c
	}
	start := make(chan struct{})
	errs := make([]error, runs)
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = c.Exec(context.Background(), script)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("run %d (database %d): %v", i, i%len(dbs), err)
		}
	}
	pool := dbs[0].Pool
	if n := scalar[int64](t, pool, `SELECT count(*) FROM pg_roles WHERE rolname = ANY($1) AND NOT rolcanlogin`, names); n != 4 {
		t.Errorf("%d of the 4 NOLOGIN group roles exist", n)
	}
	if !scalar[bool](t, pool, `SELECT pg_has_role($1, $2, 'MEMBER')`, names[0], names[1]) {
		t.Error("operator_write is not a member of operator")
	}
	for _, db := range dbs {
		if !scalar[bool](t, db.Pool, `SELECT has_table_privilege($1, 'leads', 'INSERT')`, names[3]) {
			t.Errorf("%s: the app role may not insert leads", db.Name)
		}
	}
}

// TestInstallIntoANonPublicSchema: migrations and roles.sql run with
// search_path set to another schema; the trigger's pinned path names that
// schema, so an app session that never sets search_path still gets its
// event, and the relay works with its search_path on the schema.
func TestInstallIntoANonPublicSchema(t *testing.T) {
	t.Parallel()
	const schema = "relay_home"
	l := newLogins(t)
	db := testdb.NewEmpty(t)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatal(err)
	}
	cfg, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	owner, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(owner.Close)
	if _, err := migrate.Up(ctx, owner, nil); err != nil {
		t.Fatal(err)
	}
	applyRoles(t, owner)

	if n := scalar[int64](t, db.Pool, `SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace`); n != 0 {
		t.Errorf("%d relations in schema public, want none", n)
	}
	if got := scalar[[]string](t, db.Pool, `SELECT proconfig FROM pg_proc WHERE oid = 'relay_home.lead_created_to_outbox()'::regprocedure`); !slices.Equal(got, []string{"search_path=pg_catalog, relay_home, pg_temp"}) {
		t.Errorf("trigger function config %q", got)
	}

	app := l.connect(t, db, "app_"+db.Name, nil, "outbox_app") // default search_path: "$user", public
	id := scalar[int64](t, app, `INSERT INTO relay_home.leads (owner_id) VALUES ('usr_schema') RETURNING id`)
	if n := scalar[int64](t, owner, `SELECT count(*) FROM outbox WHERE lead_id = $1`, id); n != 1 {
		t.Errorf("%d events in relay_home.outbox for the lead, want 1", n)
	}

	relayPool := l.connect(t, db, "relay_"+db.Name, map[string]string{"search_path": schema}, "outbox_relay")
	if err := migrate.Check(ctx, relayPool); err != nil {
		t.Errorf("migrate.Check as the relay: %v", err)
	}
	evs, err := outbox.New(relayPool).Claim(ctx, "relay-s", 10, time.Minute)
	if err != nil || len(evs) != 1 {
		t.Errorf("Claim as the relay: %d events, %v; want 1", len(evs), err)
	}
	mustDeny(t, "relay", relayPool, `SELECT count(*) FROM leads`)
}
