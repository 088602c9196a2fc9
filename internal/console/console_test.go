package console

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/bcrypt"

	"github.com/paragon-outbox/outbox-relay/internal/config"
	"github.com/paragon-outbox/outbox-relay/internal/operator"

	"github.com/paragon-outbox/outbox-relay/internal/operator/operatortest"
	"github.com/paragon-outbox/outbox-relay/internal/testdb"
	relaysql "github.com/paragon-outbox/outbox-relay/sql"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// fixture is a database with events in every state, a relay heartbeat, and
// a console on it.
type fixture struct {
	pool                             *pgxpool.Pool
	dead1, dead2, pend, fly, ok, ok2 operatortest.Row
	srv                              *httptest.Server
	c                                *http.Client
}

const deadErr = "rejected, not retried: paragon answered 422 Unprocessable Entity: field email"

func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	db := testdb.New(t)
	f := &fixture{pool: db.Pool}
	add := func(e operatortest.Event) operatortest.Row { return operatortest.Add(t, db.Pool, e) }
	f.dead1 = add(operatortest.Event{User: "usr_alpha", Status: "dead", Attempts: 1, LastError: deadErr, HTTPStatus: 422, CreatedAgo: 30 * time.Minute})
	f.dead2 = add(operatortest.Event{User: "usr_beta", Status: "dead", Attempts: 3, LastError: "gave up after 3 attempts: paragon answered 500", HTTPStatus: 500, CreatedAgo: 3 * time.Hour})
	f.pend = add(operatortest.Event{User: "usr_alpha", Attempts: 1, LastError: "paragon answered 503", HTTPStatus: 503, NextAttemptIn: time.Minute, CreatedAgo: 10 * time.Minute})
	f.fly = add(operatortest.Event{User: "usr_beta", Status: "in_flight", Attempts: 1, LeaseExpiresIn: time.Minute, CreatedAgo: 5 * time.Minute})
	f.ok = add(operatortest.Event{User: "usr_alpha", Status: "delivered", Attempts: 1, DeliveredAgo: 2 * time.Minute, CreatedAgo: 3 * time.Minute})
	f.ok2 = add(operatortest.Event{User: "usr_gamma", Status: "delivered", Attempts: 1, DeliveredAgo: time.Minute, CreatedAgo: 2 * time.Minute})
	exec(t, db.Pool, `UPDATE outbox SET event_name = 'Lead Updated' WHERE id = $1`, f.ok2.ID)
	exec(t, db.Pool, `INSERT INTO outbox_relays VALUES ('relay-host-1-abc', 'v9.9.9', 'host-1', now() - interval '1 hour', now(), NULL, 'closed', 4),
	                                                ('relay-old', 'v9.9.8', 'host-2', now() - interval '3 hours', now() - interval '2 hours', now() - interval '2 hours', 'closed', 0)`)
	f.serve(t, db.Pool, cfg)
	return f
}

func (f *fixture) serve(t *testing.T, pool *pgxpool.Pool, cfg Config) {
	t.Helper()
	s, err := New(context.Background(), pool, Options{Config: cfg, Actor: func() string { return "os-user@test" }})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(s)
	t.Cleanup(f.srv.Close)
	jar, _ := cookiejar.New(nil)
	f.c = &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func exec(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) get(t *testing.T, path string) (int, string, http.Header) {
	t.Helper()
	resp, err := f.c.Get(f.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func (f *fixture) post(t *testing.T, path string, form url.Values, hdr map[string]string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("POST", f.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := f.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

var tokenRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func csrfToken(t *testing.T, body string) string {
	t.Helper()
	m := tokenRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token in the page:\n%s", body)
	}
	return m[1]
}

func id(r operatortest.Row) string { return itoa(r.ID) }
func itoa(n int64) string          { return strconv.FormatInt(n, 10) }

func mustContain(t *testing.T, what, body string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(body, w) {
			t.Errorf("%s lacks %q", what, w)
		}
	}
}

func mustNotContain(t *testing.T, what, body string, nots ...string) {
	t.Helper()
	for _, w := range nots {
		if strings.Contains(body, w) {
			t.Errorf("%s contains %q", what, w)
		}
	}
}

func TestOverview(t *testing.T) {
	f := newFixture(t, Config{Addr: AddrDefault, Refresh: 7 * time.Second, ChartMinutes: 60})
	// dead1 heads the key acct:1, and an event waits behind it.
	behind := operatortest.Add(t, f.pool, operatortest.Event{User: "usr_alpha", CreatedAgo: time.Minute})
	exec(t, f.pool, `UPDATE outbox SET ordering_key = 'acct:1' WHERE id = $1`, f.dead1.ID)
	exec(t, f.pool, `UPDATE outbox SET ordering_key = 'acct:1', status = 'waiting' WHERE id = $1`, behind.ID)
	// A dead event an operator released from its key (outbox-relay skip).
	skipped := operatortest.Add(t, f.pool, operatortest.Event{User: "usr_delta", CreatedAgo: time.Hour})
	exec(t, f.pool, `UPDATE outbox SET ordering_key = 'acct:2', status = 'skipped' WHERE id = $1`, skipped.ID)
	code, body, h := f.get(t, "/")
	if code != 200 {
		t.Fatalf("GET /: %d\n%s", code, body)
	}
	mustContain(t, "overview", body,
		`id="count-waiting">1<`, `id="count-pending">1<`, `id="count-in_flight">1<`, `id="count-delivered">2<`, `id="count-dead">2<`,
		`id="count-skipped">1<`, `href="/events?status=skipped"`,
		`<meta http-equiv="refresh" content="7">`, `<svg role="img"`, "2 delivered",
		"From the start of the transaction that wrote the event",
		"relay-host-1-abc", "v9.9.9", "running", "relay-old", "stopped",
		`href="/events?user=usr_alpha"`, "paragon answered 503", "Top errors",
		`href="/events?status=dead"`,
		"Blocked ordering keys", "<code>acct:1</code>", `<a href="/events/`+id(f.dead1)+`">`)
	for k, want := range map[string]string{
		"Content-Security-Policy": "frame-ancestors 'none'", "X-Frame-Options": "DENY",
		"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
	} {
		if !strings.Contains(h.Get(k), want) {
			t.Errorf("header %s = %q, want %q", k, h.Get(k), want)
		}
	}
	if !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'none'") || strings.Contains(h.Get("Content-Security-Policy"), "unsafe") {
		t.Errorf("CSP not strict: %s", h.Get("Content-Security-Policy"))
	}
	code, body, _ = f.get(t, "/?refresh=off")
	if code != 200 || strings.Contains(body, `http-equiv="refresh"`) || !strings.Contains(body, "Auto-refresh paused") {
		t.Errorf("refresh=off still refreshes (%d)", code)
	}
	code, body, _ = f.get(t, "/static/console.css")
	if code != 200 || !strings.Contains(body, "--bad") {
		t.Errorf("stylesheet: %d", code)
	}
}

func TestOverviewBlockedKeysHook(t *testing.T) {
	db := testdb.New(t)
	s, err := New(context.Background(), db.Pool, Options{Config: Config{Addr: AddrDefault, ChartMinutes: 5},
		BlockedKeys: func(context.Context) ([]BlockedKey, error) {
			return []BlockedKey{{Key: "lead:42", UserID: "usr_k", HeadID: 7, Waiting: 3, BlockedS: 90}}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "http://127.0.0.1/", nil))
	mustContain(t, "overview", rec.Body.String(), "Blocked ordering keys", "lead:42", `href="/events/7"`, "1m30s")
	mustContain(t, "overview", rec.Body.String(), "No relay has written a heartbeat")
}

// TestOrderingKeyFilter: the undelivered events of a key, with the statuses
// that allow it; a key without one is refused, and so is a bulk re-drive by
// key (re-drive has no key filter: it would take more than the list shows).
func TestOrderingKeyFilter(t *testing.T) {
	f := newFixture(t, Config{Addr: AddrDefault, ChartMinutes: 5})
	behind := operatortest.Add(t, f.pool, operatortest.Event{User: "usr_alpha", CreatedAgo: time.Minute})
	exec(t, f.pool, `UPDATE outbox SET ordering_key = 'acct:1' WHERE id = ANY($1)`, []int64{f.dead1.ID, f.dead2.ID})
	exec(t, f.pool, `UPDATE outbox SET ordering_key = 'acct:1', status = 'waiting' WHERE id = $1`, behind.ID)
	_, body, _ := f.get(t, "/events?status=waiting&key=acct:1")
	mustContain(t, "waiting list", body, `<a href="/events/`+id(behind)+`">`)
	mustNotContain(t, "waiting list", body, `<a href="/events/`+id(f.dead1)+`">`, "bulk-link")
	_, body, _ = f.get(t, "/events?status=dead&key=acct:1")
	mustContain(t, "dead list", body, `<a href="/events/`+id(f.dead1)+`">`, `<a href="/events/`+id(f.dead2)+`">`)
	mustNotContain(t, "dead list", body, "bulk-link")
	if code, body, _ := f.get(t, "/events?key=acct:1"); code != 400 || !strings.Contains(body, "ordering key can only be searched together with status") {
		t.Errorf("key without status: %d", code)
	}
	if code, body, _ := f.get(t, "/redrive?status=dead&key=acct:1"); code != 400 || !strings.Contains(body, "bulk re-drive by ordering key is not offered") {
		t.Errorf("bulk by key: %d", code)
	}
	_, body, _ = f.get(t, "/events/"+id(f.dead1))
	mustContain(t, "event page", body, "<code>acct:1</code>", `href="/events?status=waiting&amp;key=acct%3a1"`)
}

func TestEventsFilters(t *testing.T) {
	f := newFixture(t, Config{Addr: AddrDefault, ChartMinutes: 5})
	from := time.Now().Add(-time.Hour).UTC().Format("2006-01-02T15:04")
	// A dead event an operator released from its key (outbox-relay skip).
	skipped := operatortest.Add(t, f.pool, operatortest.Event{User: "usr_delta", CreatedAgo: 3 * time.Hour})
	exec(t, f.pool, `UPDATE outbox SET ordering_key = 'acct:2', status = 'skipped' WHERE id = $1`, skipped.ID)
	all := []operatortest.Row{f.dead1, f.dead2, f.pend, f.fly, f.ok, f.ok2, skipped}
	cases := []struct {
		q    string
		want []operatortest.Row
	}{
		{"", all},
		{"status=dead", []operatortest.Row{f.dead1, f.dead2}},
		{"status=pending", []operatortest.Row{f.pend}},
		{"status=in_flight", []operatortest.Row{f.fly}},
		{"status=delivered", []operatortest.Row{f.ok, f.ok2}},
		{"status=skipped", []operatortest.Row{skipped}},
		{"status=skipped&user=usr_delta", []operatortest.Row{skipped}},
		{"status=skipped&user=usr_alpha", nil},
		{"user=usr_alpha", []operatortest.Row{f.dead1, f.pend, f.ok}},
		{"status=dead&user=usr_beta", []operatortest.Row{f.dead2}},
		{"event=Lead+Updated", []operatortest.Row{f.ok2}},
		{"lead=" + itoa(f.pend.LeadID), []operatortest.Row{f.pend}},
		{"from=" + from, []operatortest.Row{f.dead1, f.pend, f.fly, f.ok, f.ok2}},
		{"before=" + from, []operatortest.Row{f.dead2, skipped}},
		{"status=dead&from=" + from + "&error=422+UNPROCESSABLE", []operatortest.Row{f.dead1}},
		{"status=dead&from=" + time.Now().Add(-4*time.Hour).UTC().Format(time.RFC3339) + "&error=500", []operatortest.Row{f.dead2}},
	}
	for _, tc := range cases {
		code, body, _ := f.get(t, "/events?"+tc.q)
		if code != 200 {
			t.Errorf("%q: %d\n%s", tc.q, code, body)
			continue
		}
		for _, r := range all {
			link := `<a href="/events/` + id(r) + `">`
			want := false
			for _, w := range tc.want {
				want = want || w == r
			}
			if strings.Contains(body, link) != want {
				t.Errorf("%q: event %d listed=%v, want %v", tc.q, r.ID, !want, want)
			}
		}
	}
	// Identifiers are matched as given: the SQL API accepts a Connected User
	// id with surrounding spaces, and its events must be findable; a blank
	// filter is no filter.
	padded := operatortest.Add(t, f.pool, operatortest.Event{User: " usr_padded ", CreatedAgo: time.Minute})
	for q, listed := range map[string]bool{"user=+usr_padded+": true, "user=usr_padded": false, "user=+++": true} {
		code, body, _ := f.get(t, "/events?"+q)
		if got := strings.Contains(body, `<a href="/events/`+id(padded)+`">`); code != 200 || got != listed {
			t.Errorf("%q: code %d, the padded user's event listed=%v, want %v", q, code, got, listed)
		}
	}
	// Bad input: a clear message, status 400, nothing listed.
	for q, want := range map[string]string{
		"status=lost":           `status &#34;lost&#34; is not one of`,
		"lead=abc":              "is not a positive whole number",
		"from=yesterday":        "is not a time",
		"error=500":             "error text can only be searched together with status dead and a created-from time",
		"status=dead&error=500": "error text can only be searched together with status dead and a created-from time",
		"status=pending&from=" + from + "&error=x":                                                  "error text can only be searched",
		"from=" + from + "&before=" + time.Now().Add(-2*time.Hour).UTC().Format("2006-01-02T15:04"): "created before must be after created from",
		"cursor=-1": "bad page cursor",
	} {
		code, body, _ := f.get(t, "/events?"+q)
		if code != 400 || !strings.Contains(body, want) || strings.Contains(body, `<a href="/events/`+id(f.ok)+`">`) {
			t.Errorf("%q: code %d, want 400 with %q", q, code, want)
		}
	}
}

func TestEventsKeysetPagination(t *testing.T) {
	f := newFixture(t, Config{Addr: AddrDefault, ChartMinutes: 5, Page: 2})
	// Newest first: ok2, ok, fly, pend, dead2, dead1 (ids ascend in creation order).
	order := []operatortest.Row{f.ok2, f.ok, f.fly, f.pend, f.dead2, f.dead1}
	path := "/events"
	var seen []int64
	for page := 0; page < 4 && path != ""; page++ {
		code, body, _ := f.get(t, path)
		if code != 200 {
			t.Fatalf("%s: %d", path, code)
		}
		for _, r := range order {
			if strings.Contains(body, `<a href="/events/`+id(r)+`">`) {
				seen = append(seen, r.ID)
			}
		}
		m := regexp.MustCompile(`<a href="(/events\?[^"]+)" rel="next">`).FindStringSubmatch(body)
		path = ""
		if m != nil {
			path = strings.ReplaceAll(m[1], "&amp;", "&")
		}
	}
	if len(seen) != 6 {
		t.Fatalf("pages showed %v", seen)
	}
	for i, r := range order {
		if seen[i] != r.ID {
			t.Fatalf("pages showed %v, want newest first %v", seen, order)
		}
	}
	// The cursor keeps the filter.
	_, body, _ := f.get(t, "/events?user=usr_alpha")
	mustContain(t, "filtered page", body, "user=usr_alpha", "rel=\"next\"")
}

func TestEventDetail(t *testing.T) {
	f := newFixture(t, Config{Addr: AddrDefault, ChartMinutes: 5})
	code, body, _ := f.get(t, "/events/"+id(f.dead1))
	if code != 200 {
		t.Fatalf("%d", code)
	}
	mustContain(t, "dead event", body, `id="event-status">dead<`, "usr_alpha", "Attempt 1", "relay-a", "HTTP 422",
		deadErr, `&#34;email&#34;: &#34;ada@example.com&#34;`, `id="redrive-button">Re-drive<`, "Never re-driven", "took 100ms")
	// Never re-driven: the plain count, no re-drive split.
	mustContain(t, "never re-driven event", body, "<dt>Attempts</dt><dd>1</dd>")
	mustNotContain(t, "never re-driven event", body, "the last re-drive")
	// Re-driven after 3 attempts, then 2 more: "5 (2 since the last re-drive)".
	if _, err := operator.Redrive(context.Background(), f.pool, operator.Filter{IDs: []int64{f.dead2.ID}}, "alice", "outage over", false); err != nil {
		t.Fatal(err)
	}
	exec(t, f.pool, `UPDATE outbox SET attempts = attempts + 2 WHERE id = $1`, f.dead2.ID)
	_, body, _ = f.get(t, "/events/"+id(f.dead2))
	mustContain(t, "re-driven event", body, "<dt>Attempts</dt><dd>5 (2 since the last re-drive)</dd>")
	code, body, _ = f.get(t, "/events/"+id(f.ok))
	if code != 200 || strings.Contains(body, "redrive-button") || !strings.Contains(body, "delivered") {
		t.Errorf("delivered event page: %d, has re-drive button: %v", code, strings.Contains(body, "redrive-button"))
	}
	for path, want := range map[string]int{"/events/1": 404, "/events/abc": 400, "/events/-3": 400} {
		if code, _, _ := f.get(t, path); code != want {
			t.Errorf("%s: %d, want %d", path, code, want)
		}
	}
}

func TestHidePayloads(t *testing.T) {
	f := newFixture(t, Config{Addr: AddrDefault, ChartMinutes: 5, HidePayloads: true})
	_, body, _ := f.get(t, "/events/"+id(f.dead1))
	mustContain(t, "page", body, "Payloads are hidden")
	mustNotContain(t, "page", body, "ada@example.com", "Fixture")
}

func TestRedriveOneWithCSRF(t *testing.T) {
	f := newFixture(t, Config{Addr: AddrDefault, ChartMinutes: 5})
	path := "/events/" + id(f.dead1)
	_, body, _ := f.get(t, path)
	tok := csrfToken(t, body)

	status := func() string {
		var s string
		if err := f.pool.QueryRow(context.Background(), `SELECT status FROM outbox WHERE id = $1`, f.dead1.ID).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	// Refusals first; each leaves the event dead.
	for name, tc := range map[string]struct {
		form url.Values
		hdr  map[string]string
		code int
		want string
	}{
		"no token":       {url.Values{"reason": {"x"}}, nil, 403, "CSRF token"},
		"wrong token":    {url.Values{"reason": {"x"}, "csrf_token": {tok + "x"}}, nil, 403, "CSRF token"},
		"cross-origin":   {url.Values{"reason": {"x"}, "csrf_token": {tok}}, map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, "cross-origin"},
		"foreign origin": {url.Values{"reason": {"x"}, "csrf_token": {tok}}, map[string]string{"Origin": "https://evil.example"}, 403, "cross-origin"},
		"no reason":      {url.Values{"reason": {"  "}, "csrf_token": {tok}}, nil, 400, "A reason is required"},
	} {
		code, body, _ := f.post(t, path+"/redrive", tc.form, tc.hdr)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %q, want %d %q", name, code, body, tc.code, tc.want)
		}
		if s := status(); s != "dead" {
			t.Fatalf("%s: event is %s", name, s)
		}
	}
	// A token from another session is refused.
	other := &http.Client{}
	resp, err := other.Get(f.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	ob, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if code, _, _ := f.post(t, path+"/redrive", url.Values{"reason": {"x"}, "csrf_token": {csrfToken(t, string(ob))}}, nil); code != 403 {
		t.Errorf("another session's token: %d, want 403", code)
	}

	code, _, h := f.post(t, path+"/redrive", url.Values{"reason": {"Paragon fixed the email mapping"}, "csrf_token": {tok}}, nil)
	if code != 303 || h.Get("Location") != path+"?redriven=1" {
		t.Fatalf("re-drive: %d %s", code, h.Get("Location"))
	}
	if s := status(); s != "pending" {
		t.Fatalf("after re-drive the event is %s", s)
	}
	var by, reason string
	if err := f.pool.QueryRow(context.Background(), `SELECT redriven_by, reason FROM outbox_redrives WHERE outbox_id = $1`, f.dead1.ID).Scan(&by, &reason); err != nil {
		t.Fatal(err)
	}
	if by != "os-user@test" || reason != "Paragon fixed the email mapping" {
		t.Errorf("recorded by %q reason %q", by, reason)
	}
	_, body, _ = f.get(t, path+"?redriven=1")
	mustContain(t, "page after", body, "Re-driven: the event is pending", "os-user@test", "Paragon fixed the email mapping", "dead after 1 attempts")
	// Again: nothing to do, said so.
	code, _, h = f.post(t, path+"/redrive", url.Values{"reason": {"again"}, "csrf_token": {tok}}, nil)
	if code != 303 || !strings.HasSuffix(h.Get("Location"), "?redriven=0") {
		t.Errorf("second re-drive: %d %s", code, h.Get("Location"))
	}
}

func TestBulkRedrive(t *testing.T) {
	f := newFixture(t, Config{Addr: AddrDefault, ChartMinutes: 5})
	from := time.Now().Add(-time.Hour).UTC().Format("2006-01-02T15:04")
	q := "status=dead&from=" + from
	_, body, _ := f.get(t, "/events?"+q)
	mustContain(t, "dead list", body, `id="bulk-link"`)
	code, body, _ := f.get(t, "/redrive?"+q)
	if code != 200 {
		t.Fatalf("dry run: %d %s", code, body)
	}
	mustContain(t, "dry run", body, `id="dry-run-count">1<`, `id="bulk-redrive-button">Re-drive<`, id(f.dead1))
	tok := csrfToken(t, body)
	if n := count(t, f.pool, `SELECT count(*) FROM outbox WHERE status = 'dead'`); n != 2 {
		t.Fatalf("dry run changed something: %d dead", n)
	}
	for name, form := range map[string]url.Values{
		"no reason":     {"status": {"dead"}, "from": {from}, "csrf_token": {tok}},
		"no filter":     {"status": {"dead"}, "reason": {"r"}, "csrf_token": {tok}},
		"not dead":      {"status": {"pending"}, "from": {from}, "reason": {"r"}, "csrf_token": {tok}},
		"no csrf token": {"status": {"dead"}, "from": {from}, "reason": {"r"}},
	} {
		if code, _, _ := f.post(t, "/redrive", form, nil); code != 400 && code != 403 {
			t.Errorf("%s: %d", name, code)
		}
	}
	if n := count(t, f.pool, `SELECT count(*) FROM outbox WHERE status = 'dead'`); n != 2 {
		t.Fatalf("a refused bulk re-drive changed something: %d dead", n)
	}
	code, body, _ = f.post(t, "/redrive", url.Values{"status": {"dead"}, "from": {from}, "reason": {"bulk fix"}, "csrf_token": {tok}}, nil)
	if code != 200 || !strings.Contains(body, "Re-drove 1 dead event(s)") {
		t.Fatalf("bulk: %d %s", code, body)
	}
	if n := count(t, f.pool, `SELECT count(*) FROM outbox_redrives WHERE outbox_id = $1 AND reason = 'bulk fix' AND redriven_by = 'os-user@test'`, f.dead1.ID); n != 1 {
		t.Errorf("bulk re-drive not recorded")
	}
	if n := count(t, f.pool, `SELECT count(*) FROM outbox WHERE id = $1 AND status = 'dead'`, f.dead2.ID); n != 1 {
		t.Errorf("event outside the filter was re-driven")
	}
}

func count(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestBasicAuth(t *testing.T) {
	f := newFixture(t, Config{Addr: AddrDefault, ChartMinutes: 5, BasicAuth: "alice:s3cret-pw"})
	for name, set := range map[string]func(*http.Request){
		"none":       func(*http.Request) {},
		"wrong pass": func(r *http.Request) { r.SetBasicAuth("alice", "nope") },
		"wrong user": func(r *http.Request) { r.SetBasicAuth("bob", "s3cret-pw") },
	} {
		for _, path := range []string{"/", "/events", "/events/" + id(f.dead1), "/static/console.css"} {
			req, _ := http.NewRequest("GET", f.srv.URL+path, nil)
			set(req)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "Basic") || strings.Contains(string(b), "usr_alpha") {
				t.Errorf("%s %s: %d", name, path, resp.StatusCode)
			}
		}
	}
	// With credentials: the page, and a re-drive recorded as the basic-auth user.
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", f.srv.URL+"/events/"+id(f.dead1), nil)
	req.SetBasicAuth("alice", "s3cret-pw")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "operator: <strong>alice</strong>") {
		t.Fatalf("with credentials: %d", resp.StatusCode)
	}
	form := url.Values{"reason": {"because"}, "csrf_token": {csrfToken(t, string(b))}}
	req, _ = http.NewRequest("POST", f.srv.URL+"/events/"+id(f.dead1)+"/redrive", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("alice", "s3cret-pw")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 303 {
		t.Fatalf("re-drive with auth: %d", resp.StatusCode)
	}
	if n := count(t, f.pool, `SELECT count(*) FROM outbox_redrives WHERE redriven_by = 'alice'`); n != 1 {
		t.Errorf("re-drive not recorded as the basic-auth user")
	}
}

func TestBasicAuthFile(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("pw-of-bob"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	// htpasswd -B writes $2y$; accept it as well as Go's $2a$.
	os.WriteFile(good, []byte("# users\nbob:"+string(hash)+"\ncarol:$2y$"+string(hash[4:])+"\n"), 0o600)
	a, err := newAuthenticator(Config{BasicAuthFile: good})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		u, p string
		ok   bool
	}{{"bob", "pw-of-bob", true}, {"carol", "pw-of-bob", true}, {"bob", "wrong", false}, {"dave", "pw-of-bob", false},
		// Again, after successes were remembered: still exact.
		{"bob", "pw-of-bob", true}, {"bob", "pw-of-bob ", false}, {"carol", "wrong", false}} {
		r := httptest.NewRequest("GET", "http://127.0.0.1/", nil)
		r.SetBasicAuth(tc.u, tc.p)
		if u, ok := a.check(r); ok != tc.ok || (ok && u != tc.u) {
			t.Errorf("%s/%s: %q %v, want %v", tc.u, tc.p, u, ok, tc.ok)
		}
	}
	for content, want := range map[string]string{
		"bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n": "only bcrypt hashes are accepted",
		"just-a-line\n": "line 1 is not user:hash",
		"# nobody\n":    "has no user",
	} {
		p := filepath.Join(dir, "bad")
		os.WriteFile(p, []byte(content), 0o600)
		_, err := newAuthenticator(Config{BasicAuthFile: p})
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "W6ph5") {
			t.Errorf("%q: %v, want %q", content, err, want)
		}
	}
	if _, err := newAuthenticator(Config{BasicAuthFile: filepath.Join(dir, "missing")}); err == nil || !strings.Contains(err.Error(), "CONSOLE_BASIC_AUTH_FILE") {
		t.Errorf("missing file: %v", err)
	}
}

func TestReadOnlyMode(t *testing.T) {
	f := newFixture(t, Config{Addr: AddrDefault, ChartMinutes: 5, ReadOnly: true})
	checkReadOnly(t, f, "CONSOLE_READ_ONLY")
}

// TestReadOnlyForOperatorRole: connected as outbox_operator (sql/roles.sql),
// the console finds it may not re-drive and turns read-only by itself.
func TestReadOnlyForOperatorRole(t *testing.T) {
	db := testdb.New(t)
	exec(t, db.Pool, relaysql.Roles())
	f := newFixture(t, Config{Addr: AddrDefault, ChartMinutes: 5})
	// Same data, a second console connected as outbox_operator.
	pc, err := pgxpool.ParseConfig(connString(f.pool))
	if err != nil {
		t.Fatal(err)
	}
	exec(t, f.pool, relaysql.Roles())
	pc.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, "SET ROLE outbox_operator")
		return err
	}
	opPool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(opPool.Close)
	f.serve(t, opPool, Config{Addr: AddrDefault, ChartMinutes: 5})
	checkReadOnly(t, f, "may not re-drive")
	// Reading works as the operator role (every page).
	for _, p := range []string{"/", "/events?status=dead", "/events/" + id(f.dead1)} {
		if code, body, _ := f.get(t, p); code != 200 {
			t.Errorf("%s as outbox_operator: %d\n%s", p, code, body)
		}
	}
}

func connString(p *pgxpool.Pool) string { return p.Config().ConnString() }

func checkReadOnly(t *testing.T, f *fixture, why string) {
	t.Helper()
	path := "/events/" + id(f.dead1)
	_, body, _ := f.get(t, path)
	mustContain(t, "read-only page", body, "read-only", why)
	mustNotContain(t, "read-only page", body, "redrive-button", `name="csrf_token"`)
	_, list, _ := f.get(t, "/events?status=dead&user=usr_alpha")
	mustNotContain(t, "read-only list", list, "bulk-link")
	// Whatever the token, the write is refused.
	code, _, _ := f.post(t, path+"/redrive", url.Values{"reason": {"x"}, "csrf_token": {"anything"}}, nil)
	if code != 403 {
		t.Errorf("POST re-drive in read-only mode: %d", code)
	}
	code, _, _ = f.get(t, "/redrive?status=dead&user=usr_alpha")
	if code != 403 {
		t.Errorf("GET bulk re-drive in read-only mode: %d", code)
	}
	code, _, _ = f.post(t, "/redrive", url.Values{"status": {"dead"}, "user": {"usr_alpha"}, "reason": {"x"}}, nil)
	if code != 403 {
		t.Errorf("POST bulk re-drive in read-only mode: %d", code)
	}
	if n := count(t, f.pool, `SELECT count(*) FROM outbox WHERE status = 'dead'`); n != 2 {
		t.Errorf("read-only console changed events: %d dead", n)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := []Config{
		{Addr: "127.0.0.1:8080"}, {Addr: "localhost:0"}, {Addr: "[::1]:8080"},
		{Addr: "0.0.0.0:8080", BasicAuth: "a:b", TLSCertFile: "c", TLSKeyFile: "k"},
		{Addr: ":8080", BasicAuthFile: "f", InsecureHTTP: true},
	}
	for _, c := range ok {
		c.ChartMinutes = 180
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	bad := map[string]Config{
		"refusing to listen on 0.0.0.0:8080 without authentication": {Addr: "0.0.0.0:8080", InsecureHTTP: true},
		"refusing to listen on :8080 without authentication":        {Addr: ":8080", TLSCertFile: "c", TLSKeyFile: "k"},
		"refusing to serve plain HTTP on 10.0.0.5:80":               {Addr: "10.0.0.5:80", BasicAuth: "a:b"},
		"CONSOLE_BASIC_AUTH must be user:password":                  {Addr: AddrDefault, BasicAuth: "justapassword"},
		"not both":     {Addr: AddrDefault, BasicAuth: "a:b", BasicAuthFile: "f"},
		"go together":  {Addr: AddrDefault, TLSCertFile: "c"},
		"CONSOLE_ADDR": {Addr: "nonsense"},
	}
	for want, c := range bad {
		c.ChartMinutes = 180
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: %v, want %q", c, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "justapassword") {
			t.Errorf("error repeats the secret: %v", err)
		}
	}
	env := map[string]string{"CONSOLE_READ_ONLY": "maybe", "CONSOLE_REFRESH": "soon", "CONSOLE_CHART_MINUTES": "many", "CONSOLE_BASIC_AUTH": "a:hunter22"}
	_, _, err := ConfigFromEnv(func(k string) string { return env[k] })
	for _, want := range []string{`CONSOLE_READ_ONLY="maybe"`, `CONSOLE_REFRESH="soon"`, `CONSOLE_CHART_MINUTES="many"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("env error %v lacks %q", err, want)
		}
	}
	var fe *config.FieldError
	if !errors.As(err, &fe) {
		t.Errorf("env error is not a *config.FieldError: %T", err)
	}
	for want, c := range map[string]Config{
		"CONSOLE_CHART_MINUTES=0 is out of range 1..1440": {Addr: AddrDefault, ChartMinutes: 0},
		"CONSOLE_PAGE_SIZE=501 is out of range 1..500":    {Addr: AddrDefault, ChartMinutes: 5, Page: 501},
		"CONSOLE_REFRESH=-1s is negative":                 {Addr: AddrDefault, ChartMinutes: 5, Refresh: -time.Second},
	} {
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, config.ErrOutOfRange) {
			t.Errorf("%+v: %v, want %q", c, err, want)
		}
	}
	c, _, err := ConfigFromEnv(func(string) string { return "" })
	if err != nil || c.Addr != "127.0.0.1:8080" || c.Refresh != 10*time.Second || c.ChartMinutes != 180 || c.PageSize() != 50 {
		t.Errorf("defaults: %+v %v", c, err)
	}
}

// TestSettingsTableIsCurrent: docs/CONSOLE.md's settings table is the one
// generated from Config's declarations.
func TestSettingsTableIsCurrent(t *testing.T) {
	doc, err := os.ReadFile("../../docs/CONSOLE.md")
	if err != nil {
		t.Fatal(err)
	}
	want, err := config.ReplaceBlock(string(doc), "console", SettingsTable())
	if err != nil {
		t.Fatal(err)
	}
	if want != string(doc) {
		if os.Getenv("UPDATE_DOCS") == "1" {
			if err := os.WriteFile("../../docs/CONSOLE.md", []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Fatal("docs/CONSOLE.md's settings table is stale: run UPDATE_DOCS=1 go test -run TestSettingsTableIsCurrent ./internal/console/")
	}
}

// TestHostAllowList: DNS rebinding. A page at evil.example whose name
// resolves to 127.0.0.1 sends Host: evil.example; without the Host check it
// read the event (200 with payload) and, with the cookie and token of that
// response, re-drove it (303). Both are refused with 421 now and the event
// stays dead; loopback names and CONSOLE_ALLOWED_HOSTS pass.
func TestHostAllowList(t *testing.T) {
	f := newFixture(t, Config{Addr: "127.0.0.1:18081", ChartMinutes: 5, AllowedHosts: " console.internal.example , Proxy.Example:8443"})
	path := "/events/" + id(f.dead1)
	_, port, _ := strings.Cut(strings.TrimPrefix(f.srv.URL, "http://"), ":")
	do := func(method, host, p string, form url.Values, hdr map[string]string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, f.srv.URL+p, strings.NewReader(form.Encode()))
		req.Host = host
		if method == "POST" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := f.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, host := range []string{"evil.example:" + port, "evil.example", "127.0.0.1.evil.example:" + port, "localhost.evil.example"} {
		code, body := do("GET", host, path, nil, nil)
		if code != http.StatusMisdirectedRequest || !strings.Contains(body, "CONSOLE_ALLOWED_HOSTS") || strings.Contains(body, "usr_alpha") {
			t.Errorf("GET Host %s: %d %q, want 421 naming CONSOLE_ALLOWED_HOSTS", host, code, body)
		}
	}
	// The attacker's best POST: a cookie and token got from the console
	// itself, same-origin as far as the browser knows.
	code, body := do("GET", "127.0.0.1:"+port, path, nil, nil)
	if code != 200 {
		t.Fatalf("GET via 127.0.0.1: %d", code)
	}
	tok := csrfToken(t, body)
	code, body = do("POST", "evil.example:"+port, path+"/redrive", url.Values{"reason": {"x"}, "csrf_token": {tok}},
		map[string]string{"Origin": "http://evil.example:" + port, "Sec-Fetch-Site": "same-origin"})
	if code != http.StatusMisdirectedRequest || !strings.Contains(body, "CONSOLE_ALLOWED_HOSTS") {
		t.Errorf("POST Host evil.example: %d %q, want 421", code, body)
	}
	if n := count(t, f.pool, `SELECT count(*) FROM outbox WHERE id = $1 AND status = 'dead'`, f.dead1.ID); n != 1 {
		t.Fatal("the evil-Host POST re-drove the event")
	}
	for _, host := range []string{"127.0.0.1:" + port, "127.0.0.1", "localhost:" + port, "LOCALHOST", "localhost.", "[::1]:" + port, "[::1]",
		"console.internal.example", "console.internal.example:" + port, "proxy.example:8443", "Proxy.Example"} {
		if code, body := do("GET", host, path, nil, nil); code != 200 || !strings.Contains(body, "usr_alpha") {
			t.Errorf("GET Host %s: %d, want 200 with the event", host, code)
		}
	}
	// A same-origin POST through an allowed name still re-drives.
	_, body = do("GET", "console.internal.example:"+port, path, nil, nil)
	tok = csrfToken(t, body)
	code, body = do("POST", "console.internal.example:"+port, path+"/redrive", url.Values{"reason": {"host test"}, "csrf_token": {tok}},
		map[string]string{"Origin": "http://console.internal.example:" + port, "Sec-Fetch-Site": "same-origin"})
	if code != http.StatusSeeOther {
		t.Errorf("POST via an allowed host: %d %q, want 303", code, body)
	}
}

// TestHostAllowListConfiguredAddr: CONSOLE_ADDR's own host is allowed; an
// unspecified one (0.0.0.0) allows nothing more than loopback.
func TestHostAllowListConfiguredAddr(t *testing.T) {
	for _, tc := range []struct {
		addr, host string
		ok         bool
	}{
		{"console.lan:8080", "console.lan:8080", true},
		{"10.1.2.3:8080", "10.1.2.3", true},
		{"0.0.0.0:8080", "0.0.0.0:8080", false},
		{"0.0.0.0:8080", "10.1.2.3:8080", false},
		{"[::]:8080", "evil.example", false},
		{"127.0.0.1:8080", "evil.example:8080", false},
	} {
		if got := (Config{Addr: tc.addr}).allowedHosts()[hostOnly(tc.host)]; got != tc.ok {
			t.Errorf("Addr %s, Host %s: allowed %v, want %v", tc.addr, tc.host, got, tc.ok)
		}
	}
}
