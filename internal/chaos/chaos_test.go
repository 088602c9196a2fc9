package chaos_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/paragon-outbox/outbox-relay/internal/leads"
	"github.com/paragon-outbox/outbox-relay/internal/paragonlocal"
	"github.com/paragon-outbox/outbox-relay/internal/paragontest"
	"github.com/paragon-outbox/outbox-relay/internal/testdb"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "outbox-relay-chaos")
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
	testdb.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

// plan sizes a chaos run. The short plan runs in `make test`; CHAOS=full
// (make chaos) runs the full one.
type plan struct {
	copies   int           // times leads.csv is loaded (10,000 leads each)
	relays   int           // relay processes at once
	interval time.Duration // between chaos actions
	drain    time.Duration // how long the run may take before the test fails
	until    float64       // chaos goes on until this share of the leads is delivered
}

func currentPlan() plan {
	if os.Getenv("CHAOS") == "full" {
		return plan{copies: 1, relays: 3, interval: 700 * time.Millisecond, drain: 15 * time.Minute, until: 0.95}
	}
	return plan{copies: 1, relays: 2, interval: 600 * time.Millisecond, drain: 10 * time.Minute, until: 0.8}
}

type relayProc struct {
	name string
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan struct{}
	err  error
}

type run struct {
	t        *testing.T
	env      []string
	mu       sync.Mutex
	procs    map[string]*relayProc
	started  int
	logs     []*relayProc
	kills    int
	terms    int
	dbCuts   int
	apiCuts  int
	termExit []string
}

func (r *run) start(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started++
	out := &bytes.Buffer{}
	cmd := exec.Command(binary, "relay")
	cmd.Env = append(r.env, "RELAY_ID="+name+"-"+strconv.Itoa(r.started))
	cmd.Stdout, cmd.Stderr = &lockedWriter{w: out}, &lockedWriter{w: out}
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("start relay: %v", err)
	}
	p := &relayProc{name: name, cmd: cmd, out: out, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	r.procs[name] = p
	r.logs = append(r.logs, p)
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func (r *run) kill(name string) {
	p := r.procs[name]
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	r.kills++
}

// term stops a relay gracefully; it must exit 0 within its grace period.
func (r *run) term(name string) {
	p := r.procs[name]
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			r.termExit = append(r.termExit, fmt.Sprintf("%s: %v", name, p.err))
		}
	case <-time.After(30 * time.Second):
		r.termExit = append(r.termExit, name+": did not exit within 30s of SIGTERM")
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	r.terms++
}

func newProxy(t *testing.T, srv *toxiproxy.ApiServer, name, upstream string) *toxiproxy.Proxy {
	t.Helper()
	p := toxiproxy.NewProxy(srv, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

// TestChaos: relays killed, stopped, cut off from Postgres and Paragon while
// Paragon fails, stalls and drops requests; every lead is still delivered.
func TestChaos(t *testing.T) {
	pl := currentPlan()
	ctx := context.Background()
	db := testdb.New(t)

	// Local Paragon with every kind of trouble.
	faults := paragonlocal.Faults{Fail500: 0.05, Fail429: 0.03, RetryAfter: "1", Slow: 0.02, SlowDelay: 300 * time.Millisecond, Drop: 0.02}
	local := paragontest.New(t, paragontest.Options{
		ProjectID: "chaos", Faults: faults,
		Endpoint: func(c *paragonlocal.Config) { c.DiscardPayloads = true },
	})
	srv, base, keyPEM := local.Server, local.BaseURL, local.KeyPEM

	// In-process TCP proxies (toxiproxy) in front of Postgres and Paragon.
	pgCfg, err := pgx.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	tp := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	pgProxy := newProxy(t, tp, "postgres", net.JoinHostPort(pgCfg.Host, strconv.Itoa(int(pgCfg.Port))))
	apiProxy := newProxy(t, tp, "paragon", strings.TrimPrefix(base, "http://"))
	proxiedDB := strings.Replace(db.URL, net.JoinHostPort(pgCfg.Host, strconv.Itoa(int(pgCfg.Port))), pgProxy.Listen, 1)
	if proxiedDB == db.URL {
		t.Fatalf("could not route %s through the proxy", db.Name)
	}

	keyFile := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}

	// The leads, written through SQL (COPY fires the trigger).
	csv, err := os.ReadFile("../../testdata/leads.csv")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for range pl.copies {
		n, err := leads.CopyCSV(ctx, db.Pool, bytes.NewReader(csv))
		if err != nil {
			t.Fatal(err)
		}
		total += n
	}

	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"DATABASE_URL=" + proxiedDB,
		"PARAGON_PROJECT_ID=chaos",
		"PARAGON_SIGNING_KEY_FILE=" + keyFile,
		"PARAGON_BASE_URL=http://" + apiProxy.Listen,
		"RELAY_CONCURRENCY=16",
		"RELAY_BATCH_SIZE=100",
		"RELAY_POLL_INTERVAL=20ms",
		"RELAY_SEND_TIMEOUT=2s",
		"RELAY_LEASE=12s",
		"RELAY_BACKOFF_BASE=50ms",
		"RELAY_BACKOFF_MAX=1s",
		"RELAY_SHUTDOWN_GRACE=3s",
		"RELAY_ADMIN_ADDR=off",
		"LOG_LEVEL=warn",
	}
	r := &run{t: t, env: env, procs: map[string]*relayProc{}}
	names := make([]string, pl.relays)
	for i := range names {
		names[i] = fmt.Sprintf("relay%d", i)
		r.start(names[i])
	}
	defer func() {
		for _, p := range r.procs {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			for _, p := range r.logs {
				t.Logf("--- log of %s (last 3000 bytes)\n%s", p.name, tail(p.out.String(), 3000))
			}
		}
	}()

	began := time.Now()
	rng := rand.New(rand.NewPCG(1, 2))
	settled := func() (done bool, delivered, dead int64) {
		var total2 int64
		err := db.Pool.QueryRow(ctx, `
			SELECT count(*) FILTER (WHERE status = 'delivered'), count(*) FILTER (WHERE status = 'dead'), count(*) FROM outbox`).
			Scan(&delivered, &dead, &total2)
		if err != nil {
			t.Fatal(err)
		}
		return delivered+dead == total2 && total2 == total, delivered, dead
	}
	// Chaos until plan.until of the work is done, then let it drain. The
	// actions take turns so every kind happens in every run.
	for step := 0; ; step++ {
		done, delivered, _ := settled()
		if done {
			break
		}
		if time.Since(began) > pl.drain {
			t.Fatalf("not drained after %s: %d of %d delivered", pl.drain, delivered, total)
		}
		if float64(delivered) < float64(total)*pl.until {
			name := names[rng.IntN(len(names))]
			switch step % 6 {
			case 0, 1: // SIGKILL mid-run, restart at once
				r.kill(name)
				r.start(name)
			case 2: // graceful stop, restart
				r.term(name)
				r.start(name)
			case 3: // database connection cut for a while
				pgProxy.Stop()
				time.Sleep(time.Duration(500+rng.IntN(2500)) * time.Millisecond)
				if err := pgProxy.Start(); err != nil {
					t.Fatal(err)
				}
				r.dbCuts++
			case 4: // Paragon connection cut for a while
				apiProxy.Stop()
				time.Sleep(time.Duration(500+rng.IntN(2000)) * time.Millisecond)
				if err := apiProxy.Start(); err != nil {
					t.Fatal(err)
				}
				r.apiCuts++
			case 5: // a relay (re)starts while its database is unreachable
				pgProxy.Stop()
				r.kill(name)
				r.start(name)
				time.Sleep(time.Duration(500+rng.IntN(1500)) * time.Millisecond)
				if err := pgProxy.Start(); err != nil {
					t.Fatal(err)
				}
				r.dbCuts++
			}
		}
		time.Sleep(pl.interval)
	}
	drainTime := time.Since(began)
	for _, n := range names {
		r.term(n)
	}

	// Checks, from SQL and from what the endpoint received.
	_, delivered, dead := settled()
	if dead != 0 || delivered != total {
		t.Fatalf("delivered %d, dead %d of %d", delivered, dead, total)
	}
	received := srv.CountByEventID()
	rows, err := db.Pool.Query(ctx, `
		SELECT o.event_id::text, o.attempts,
		       count(a.attempt) AS logged,
		       count(a.attempt) FILTER (WHERE a.http_status IS NULL) AS unknown_outcome
		FROM outbox o LEFT JOIN outbox_attempts a ON a.outbox_id = o.id
		GROUP BY o.id`)
	if err != nil {
		t.Fatal(err)
	}
	var lost, dups, explained, unexplained, missingAttempts int
	for rows.Next() {
		var eid string
		var attempts, logged, unknown int
		if err := rows.Scan(&eid, &attempts, &logged, &unknown); err != nil {
			t.Fatal(err)
		}
		got := received[eid]
		if got == 0 {
			lost++
			continue
		}
		if logged != attempts {
			missingAttempts++
			if missingAttempts < 5 {
				t.Errorf("event %s: outbox.attempts=%d but %d attempts logged", eid, attempts, logged)
			}
		}
		if extra := got - 1; extra > 0 {
			dups += extra
			// A duplicate needs an attempt whose outcome the relay never learned:
			// killed before recording (interrupted), or no response (connection cut
			// after Paragon accepted).
			if unknown >= extra {
				explained += extra
			} else {
				unexplained += extra - unknown
				t.Errorf("event %s delivered %d times but only %d attempts had an unknown outcome", eid, got, unknown)
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if lost != 0 {
		t.Errorf("%d events never reached Paragon", lost)
	}
	if len(r.termExit) > 0 {
		t.Errorf("relays that did not stop cleanly on SIGTERM: %v", r.termExit)
	}
	st := srv.Stats()
	t.Logf("CHAOS RESULT leads=%d relays=%d kills=%d sigterms=%d db_cuts=%d paragon_cuts=%d drain=%s delivered=%d dead=%d lost=%d duplicates=%d explained=%d injected_500=%d injected_429=%d slow=%d dropped=%d",
		total, pl.relays, r.kills, r.terms, r.dbCuts, r.apiCuts, drainTime.Round(100*time.Millisecond), delivered, dead, lost, dups, explained,
		st.Injected500, st.Injected429, st.InjectedSlow, st.InjectedDrop)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
