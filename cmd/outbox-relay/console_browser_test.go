package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/testdb"
	"github.com/paragon-outbox/outbox-relay/internal/testutil"
)

// chromiumPath is Debian's chromium (apt-get install -y chromium; .ci/run
// installs it). CHROMIUM_PATH overrides it.
func chromiumPath() string {
	if p := os.Getenv("CHROMIUM_PATH"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// background runs an outbox-relay command until the test stops it; stop
// cancels it and fails the test on a non-zero exit.
func background(t *testing.T, args ...string) (stop func(), stderr *testutil.SyncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var out testutil.SyncBuffer
	stderr = &testutil.SyncBuffer{}
	go func() { done <- run(ctx, args, &out, stderr) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("outbox-relay %s exited %d:\n%s", args[0], code, stderr.String())
		}
	}
	t.Cleanup(stop)
	return stop, stderr
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func scalarInt(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestConsoleInBrowser: a real relay makes two events dead (paragon-local
// rejects them with 422); an operator, in headless Chromium, opens the
// overview, follows the dead count to the dead events, opens one, sees the
// failed attempt, re-drives it with the button labelled "Re-drive" and a
// reason, re-drives the other from the bulk page, and a running relay
// delivers both. With UPDATE_SCREENSHOTS=1 it writes a PNG of each page to
// docs/console/.
func TestConsoleInBrowser(t *testing.T) {
	if _, err := os.Stat(chromiumPath()); err != nil {
		t.Fatalf("the console's browser test needs Chromium at %s (%v): install it with `apt-get install -y chromium` (.ci/run does), or set CHROMIUM_PATH", chromiumPath(), err)
	}
	clearEnv(t)
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "CONSOLE_") {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
	db := testdb.New(t)
	keyPath, _ := writeKey(t)
	t.Setenv("DATABASE_URL", db.URL)
	t.Setenv("PARAGON_PROJECT_ID", "p1")
	t.Setenv("PARAGON_SIGNING_KEY_FILE", keyPath)
	t.Setenv("RELAY_ADMIN_ADDR", "off")
	t.Setenv("RELAY_POLL_INTERVAL", "200ms")
	t.Setenv("USER", "browser-operator")

	// Paragon that rejects leads named "Poison", and one that accepts all.
	rejecting, accepting := freeAddr(t), freeAddr(t)
	background(t, "paragon-local", "-addr", rejecting, "-project-id", "p1", "-signing-key-file", keyPath, "-reject-match", "Poison", "-reject-status", "422")
	background(t, "paragon-local", "-addr", accepting, "-project-id", "p1", "-signing-key-file", keyPath)

	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `
		INSERT INTO leads (owner_id, first_name, last_name, email, company)
		VALUES ('usr_acme', 'Ada', 'Lovelace', 'ada@example.com', 'Acme'),
		       ('usr_acme', 'Poison', 'Pill', 'poison@example.com', 'Acme'),
		       ('usr_globex', 'Grace', 'Hopper', 'grace@example.com', 'Globex'),
		       ('usr_globex', 'Poison', 'Ivy', 'ivy@example.com', 'Globex')`); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PARAGON_BASE_URL", "http://"+rejecting)
	t.Setenv("RELAY_ID", "relay-rejected")
	stopRelay1, _ := background(t, "relay")
	waitUntil(t, "two delivered and two dead events", func() bool {
		return scalarInt(t, db.Pool, `SELECT count(*) FROM outbox WHERE status = 'delivered'`) == 2 &&
			scalarInt(t, db.Pool, `SELECT count(*) FROM outbox WHERE status = 'dead'`) == 2
	})
	stopRelay1()
	var deadAcme, deadGlobex int64
	if err := db.Pool.QueryRow(ctx, `SELECT (SELECT id FROM outbox WHERE status = 'dead' AND user_id = 'usr_acme'),
	                                        (SELECT id FROM outbox WHERE status = 'dead' AND user_id = 'usr_globex')`).Scan(&deadAcme, &deadGlobex); err != nil {
		t.Fatal(err)
	}
	// The fix is deployed: a relay against the accepting endpoint.
	t.Setenv("PARAGON_BASE_URL", "http://"+accepting)
	t.Setenv("RELAY_ID", "relay-accepting")
	background(t, "relay")
	waitUntil(t, "the second relay's heartbeat", func() bool {
		return scalarInt(t, db.Pool, `SELECT count(*) FROM outbox_relays WHERE relay_id = 'relay-accepting' AND stopped_at IS NULL`) == 1
	})

	consoleAddr := freeAddr(t)
	background(t, "console", "-addr", consoleAddr)
	base := "http://" + consoleAddr
	waitUntil(t, "the console to listen", func() bool {
		resp, err := http.Get(base + "/static/console.css")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})

	// The flags the issue names, nothing else from outside.
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromiumPath()),
		chromedp.Flag("headless", true), chromedp.Flag("no-sandbox", true), chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("no-first-run", true),
		chromedp.WindowSize(1280, 1000),
		chromedp.UserDataDir(t.TempDir()),
	)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	bctx, cancelTimeout := context.WithTimeout(bctx, 3*time.Minute)
	defer cancelTimeout()

	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, steps...); err != nil {
			t.Fatalf("browser: %s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("browser: text of %s: %v", sel, err)
		}
		return strings.TrimSpace(s)
	}
	shots := os.Getenv("UPDATE_SCREENSHOTS") == "1"
	shot := func(name string) {
		t.Helper()
		if !shots {
			return
		}
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100)) // quality 100: PNG
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "console", name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	visible := func(sel string) chromedp.Action[chromedp.Void] { return chromedp.WaitVisible(chromedp.CSS(sel)) }
	click := func(sel string) chromedp.Action[chromedp.Void] { return chromedp.Click(chromedp.CSS(sel)) }

	// Overview → dead events → the dead event.
	do("open the overview", chromedp.Navigate(base+"/?refresh=off"), visible("#dead-link"))
	if n := text("#count-dead"); n != "2" {
		t.Errorf("overview shows %q dead, want 2", n)
	}
	relays := text("#relays")
	for _, w := range []string{"relay-accepting", "running", "relay-rejected", "stopped"} {
		if !strings.Contains(relays, w) {
			t.Errorf("relays table lacks %q:\n%s", w, relays)
		}
	}
	shot("overview")
	do("follow the dead count", click("#dead-link"), visible("#events"))
	shot("events")
	do("open the dead event", click(fmt.Sprintf(`#events a[href="/events/%d"]`, deadAcme)), visible("#attempts"))
	attempts := text("#attempts")
	for _, w := range []string{"Attempt 1", "relay-rejected", "failed", "HTTP 422"} {
		if !strings.Contains(attempts, w) {
			t.Errorf("attempts lack %q:\n%s", w, attempts)
		}
	}
	if label := text("#redrive-button"); label != "Re-drive" {
		t.Errorf("button labelled %q, want Re-drive", label)
	}
	shot("event")

	// Re-drive it with a reason; the running relay delivers it.
	do("re-drive", chromedp.SendKeys(chromedp.CSS("#reason"), "Paragon accepts these leads now"), click("#redrive-button"), visible(".flash"))
	if flash := text(".flash"); !strings.Contains(flash, "Re-driven") {
		t.Errorf("after the click: %q", flash)
	}
	waitUntil(t, "the re-driven event to be delivered", func() bool {
		return scalarInt(t, db.Pool, `SELECT count(*) FROM outbox WHERE id = $1 AND status = 'delivered'`, deadAcme) == 1
	})
	do("reload the event", chromedp.Reload(), visible("#event-status"))
	if st := text("#event-status"); st != "delivered" {
		t.Errorf("after the relay delivered it the page says %q", st)
	}
	shot("event-delivered")
	if n := scalarInt(t, db.Pool, `SELECT count(*) FROM outbox_redrives WHERE outbox_id = $1 AND redriven_by = 'browser-operator'
		AND reason = 'Paragon accepts these leads now'`, deadAcme); n != 1 {
		t.Errorf("re-drive not recorded with the operator and reason")
	}

	// Bulk: the remaining dead event, by Connected User, dry run first.
	do("open the bulk re-drive", chromedp.Navigate(base+"/events?status=dead&user=usr_globex"), visible("#bulk-link"),
		click("#bulk-link"), visible("#dry-run-count"))
	if dry := text("#dry-run-count"); dry != "1" {
		t.Errorf("dry run counts %q, want 1", dry)
	}
	shot("redrive")
	do("bulk re-drive", chromedp.SendKeys(chromedp.CSS("#reason"), "same fix, bulk"), click("#bulk-redrive-button"), visible("#bulk-result"))
	if res := text("#bulk-result"); !strings.Contains(res, "Re-drove 1 dead event") {
		t.Errorf("bulk result %q", res)
	}
	waitUntil(t, "the bulk re-driven event to be delivered", func() bool {
		return scalarInt(t, db.Pool, `SELECT count(*) FROM outbox WHERE id = $1 AND status = 'delivered'`, deadGlobex) == 1
	})
}

// TestConsoleRefusesUnsafeListen: a non-loopback address needs auth and TLS
// (or CONSOLE_INSECURE_HTTP), checked before the database is touched.
func TestConsoleRefusesUnsafeListen(t *testing.T) {
	clearEnv(t)
	t.Setenv("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"CONSOLE_ADDR": "0.0.0.0:0", "CONSOLE_INSECURE_HTTP": "true"}, "without authentication"},
		{map[string]string{"CONSOLE_ADDR": "0.0.0.0:0", "CONSOLE_BASIC_AUTH": "ops:hunter22"}, "refusing to serve plain HTTP"},
		{map[string]string{"CONSOLE_BASIC_AUTH": "nocolon-hunter22"}, "must be user:password"},
		{map[string]string{"CONSOLE_READ_ONLY": "perhaps"}, `CONSOLE_READ_ONLY="perhaps"`},
	} {
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		code, _, stderr := runCmd(t, "console")
		if code == 0 || !strings.Contains(stderr, tc.want) || strings.Contains(stderr, "hunter22") {
			t.Errorf("%v: exit %d, stderr %q; want %q without the password", tc.env, code, stderr, tc.want)
		}
		for k := range tc.env {
			os.Unsetenv(k)
		}
	}
	if code, _, stderr := runCmd(t, "console", "-addr", "10.1.2.3:80"); code == 0 || !strings.Contains(stderr, "without authentication") {
		t.Errorf("-addr 10.1.2.3:80: %d %s", code, stderr)
	}
}
