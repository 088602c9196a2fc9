package failover_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/migrate"
	"github.com/paragon-outbox/outbox-relay/internal/paragonlocal"
	"github.com/paragon-outbox/outbox-relay/internal/paragontest"
	"github.com/paragon-outbox/outbox-relay/internal/pgcluster"
	"github.com/paragon-outbox/outbox-relay/internal/pgutil"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "outbox-relay-failover")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "outbox-relay")
	build := exec.Command("go", "build", "-o", binary, "../../cmd/outbox-relay")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		panic("build outbox-relay: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// deadline bounds every wait: generous, since the machine is shared; the
// figures that matter are logged, never asserted.
const deadline = 4 * time.Minute

// env is a local Paragon endpoint and the relay's environment for it.
type env struct {
	srv   *paragonlocal.Server
	vars  []string
	relay *relayProc // the last one started
}

func newEnv(t *testing.T, databaseURL string) *env {
	t.Helper()
	local := paragontest.New(t, paragontest.Options{ProjectID: "failover"})
	srv, base := local.Server, local.BaseURL
	keyFile := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(keyFile, local.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	port, err := pgcluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return &env{srv: srv, vars: []string{
		"PATH=" + os.Getenv("PATH"),
		"DATABASE_URL=" + databaseURL,
		"PARAGON_PROJECT_ID=failover",
		"PARAGON_SIGNING_KEY_FILE=" + keyFile,
		"PARAGON_BASE_URL=" + base,
		"RELAY_CONCURRENCY=8",
		"RELAY_BATCH_SIZE=50",
		"RELAY_POLL_INTERVAL=50ms",
		"RELAY_SEND_TIMEOUT=2s",
		"RELAY_LEASE=13s",
		"RELAY_BACKOFF_BASE=50ms",
		"RELAY_BACKOFF_MAX=1s",
		"RELAY_SHUTDOWN_GRACE=3s",
		"RELAY_PURGE_INTERVAL=1s",
		"RELAY_RETAIN_DELIVERED=720h",
		fmt.Sprintf("RELAY_ADMIN_ADDR=127.0.0.1:%d", port),
		"LOG_LEVEL=info",
	}}
}

func (e *env) adminURL() string {
	for _, v := range e.vars {
		if a, ok := strings.CutPrefix(v, "RELAY_ADMIN_ADDR="); ok {
			return "http://" + a
		}
	}
	return ""
}

// relayProc is one running relay process.
type relayProc struct {
	cmd  *exec.Cmd
	out  *syncBuf
	done chan struct{}
	err  error
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (e *env) startRelay(t *testing.T) *relayProc {
	t.Helper()
	p := &relayProc{out: &syncBuf{}, done: make(chan struct{})}
	p.cmd = exec.Command(binary, "relay")
	p.cmd.Env = e.vars
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	e.relay = p
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("--- relay log (last 4000 bytes)\n%s", tail(p.out.String(), 4000))
		}
	})
	return p
}

// stop sends SIGTERM; the relay must exit 0.
func (p *relayProc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			t.Errorf("relay exited with %v after SIGTERM", p.err)
		}
	case <-time.After(time.Minute):
		t.Errorf("relay did not exit within a minute of SIGTERM")
	}
}

func (p *relayProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// migrated creates database "app" on c with the outbox schema.
func migrated(t *testing.T, c *pgcluster.Cluster) string {
	t.Helper()
	c.MustExec("postgres", "CREATE DATABASE app")
	ctx := context.Background()
	pool, err := pgutil.NewPool(ctx, c.URL("app"), pgutil.PoolOptions{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := migrate.Up(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	return c.URL("app")
}

// insertLeads commits n leads (one transaction) through url, retrying the
// connection until deadline (the app, too, reconnects after a failover). It
// returns the time the insert committed.
func insertLeads(t *testing.T, url string, n int, tag string) time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, url)
		if err == nil {
			_, err = conn.Exec(ctx, `INSERT INTO leads (owner_id, last_name, company, external_id)
				SELECT 'usr_' || (g % 7), 'Lead', 'Co', $1 || '-' || g FROM generate_series(1, $2::int) g`, tag, n)
			conn.Close(ctx)
			if err == nil {
				return time.Now()
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("insert %d leads (%s): %v", n, tag, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitDelivered waits until every outbox row of the database at url is
// delivered and Paragon received each of its events at least once.
func waitDelivered(t *testing.T, e *env, url string) {
	t.Helper()
	if e.relay != nil && e.relay.exited() {
		t.Fatalf("the relay exited: %v", e.relay.err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	var pending, total int
	var missing int
	for {
		pending, total, missing = -1, -1, -1
		conn, err := pgx.Connect(ctx, url)
		if err == nil {
			var ids []string
			err = conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status <> 'delivered'), count(*), array_agg(event_id::text) FROM outbox`).Scan(&pending, &total, &ids)
			conn.Close(ctx)
			if err == nil {
				got := e.srv.CountByEventID()
				missing = 0
				for _, id := range ids {
					if got[id] == 0 {
						missing++
					}
				}
				if pending == 0 && missing == 0 {
					return
				}
			}
		}
		if e.relay != nil && e.relay.exited() {
			t.Fatalf("the relay exited: %v", e.relay.err)
		}
		if ctx.Err() != nil {
			t.Fatalf("not all delivered within %s: %d of %d rows not delivered, %d events never received (last error %v)", deadline, pending, total, missing, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitReady waits for /readyz to answer 200.
func waitReady(t *testing.T, e *env) {
	t.Helper()
	end := time.Now().Add(deadline)
	var last string
	for time.Now().Before(end) {
		resp, err := http.Get(e.adminURL() + "/readyz")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, b)
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("/readyz not ready within %s: %s", deadline, last)
}

// relayPIDs returns the backend pids of the relay's sessions on url.
func relayPIDs(ctx context.Context, url string) ([]int32, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	rows, err := pool.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = 'app' AND pid <> pg_backend_pid() AND backend_type = 'client backend'`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int32])
}
