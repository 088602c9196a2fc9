package paragonlocal

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/paragon-outbox/outbox-relay/internal/testutil"
)

const testProject = "proj-123"

var (
	keysOnce          sync.Once
	testKey, otherKey *rsa.PrivateKey
	keysErr           error
)

var (
	testNow      = time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)
	eventPath    = "/projects/" + testProject + "/sdk/events/trigger"
	testAudience = "useparagon.com/" + testProject
	leadPayload  = `{"eventId":"e-1","leadId":1024}`
	leadBody     = `{"name":"Lead Created","payload":` + leadPayload + `}`
)

const (
	maxTestWait        = 10 * time.Second
	slowTestDelay      = 30 * time.Millisecond
	hugeSlowTestDelay  = time.Minute
	cancelAfterTimeout = 100 * time.Millisecond
)

// examplePayload is testdata/lead-created.example.json, inlined.
const examplePayload = `{
  "eventId": "0193c9a2-5d1e-7c3a-9f0b-2a4e8d6c1b37",
  "leadId": 1024,
  "externalId": "ed07e003-b088-481d-b222-b2bd232fbdbe",
  "firstName": "Sahra",
  "lastName": "Kohrt",
  "email": "sahra.kohrt@example.com",
  "company": "Menne, Liebich und Seidel",
  "title": "District Intranet Agent",
  "phone": "(362) 619-9371",
  "leadSource": "Webinar",
  "status": "Open - Not Contacted",
  "country": "Germany",
  "annualRevenue": 104188797,
  "numberOfEmployees": 1100,
  "description": "Asked for a demo after the webinar.",
  "createdAt": "2026-09-01T00:12:19.678Z"
}`

// keys returns two generated 2048-bit keys, made once per test binary.
func keys(t testing.TB) (*rsa.PrivateKey, *rsa.PrivateKey) {
	t.Helper()
	keysOnce.Do(func() {
		if testKey, _, keysErr = GenerateKey(); keysErr != nil {
			return
		}
		otherKey, _, keysErr = GenerateKey()
	})
	if keysErr != nil {
		t.Fatalf("GenerateKey: %v", keysErr)
	}
	return testKey, otherKey
}

// clock is a settable, concurrency-safe Config.Now.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock        { c := &clock{}; c.ns.Store(t.UnixNano()); return c }
func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func goodClaims(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"sub": "user-1",
		"iat": now.Unix(),
		"exp": now.Add(time.Hour).Unix(),
		"aud": testAudience,
	}
}

func sign(t testing.TB, key *rsa.PrivateKey, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(key)
	if err != nil {
		t.Fatalf("signing token: %v", err) // error text holds no key material
	}
	return s
}

type fixture struct {
	s     *Server
	ts    *httptest.Server
	clock *clock
	tok   string // valid token at clock.Now()
}

func newFixture(t *testing.T, mutate func(*Config)) *fixture {
	t.Helper()
	key, _ := keys(t)
	c := newClock(testNow)
	cfg := Config{ProjectID: testProject, PublicKey: &key.PublicKey, Now: c.Now}
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return &fixture{s: s, ts: ts, clock: c, tok: sign(t, key, goodClaims(c.Now()))}
}

type result struct {
	status int
	header http.Header
	body   string
}

// do sends one request; tok "" sends no Authorization header.
func (f *fixture) do(t *testing.T, method, path, tok, ct string, body io.Reader) result {
	t.Helper()
	res, err := f.send(context.Background(), f.ts.Client(), method, path, tok, ct, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return res
}

func (f *fixture) send(ctx context.Context, c *http.Client, method, path, tok, ct string, body io.Reader) (result, error) {
	req, err := http.NewRequestWithContext(ctx, method, f.ts.URL+path, body)
	if err != nil {
		return result{}, err
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := c.Do(req)
	if err != nil {
		return result{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, header: resp.Header, body: string(b)}, err
}

func (f *fixture) post(t *testing.T, tok, body string) result {
	t.Helper()
	return f.do(t, http.MethodPost, eventPath, tok, "application/json", strings.NewReader(body))
}

func wantStatus(t *testing.T, r result, code int) {
	t.Helper()
	if r.status != code {
		t.Fatalf("status = %d, want %d (body %s)", r.status, code, r.body)
	}
}

// errorOf decodes an {"error": "..."} body.
func errorOf(t *testing.T, r result) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.body), &e); err != nil || e.Error == "" {
		t.Fatalf("error body %q is not {\"error\": ...}", r.body)
	}
	return e.Error
}

func TestAccept(t *testing.T) {
	t.Run("201 and exact raw payload bytes recorded", func(t *testing.T) {
		f := newFixture(t, nil)
		payload := "{ \"eventId\" : \"0193c9a2-5d1e\",\n\t\"big\": 9007199254740993, \"neg\": -12345678901234567890,\n" +
			` "f": 1.50e+3, "text": "Grüße \"quoted\"\nline2 \\ \u2028 😀 \u00e9", "nested": {"eventId": 7, "a": [1, {"b": null}]}, "ok": true }`
		r := f.post(t, f.tok, `{"name":"Lead Created","payload":`+payload+"}")
		wantStatus(t, r, http.StatusCreated)
		if r.body != "{}" {
			t.Errorf("body = %q, want {}", r.body)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
		got := f.s.Received()
		if len(got) != 1 {
			t.Fatalf("Received() has %d events, want 1", len(got))
		}
		ev := got[0]
		if !bytes.Equal(ev.Payload, []byte(payload)) {
			t.Errorf("payload bytes changed:\n got %q\nwant %q", ev.Payload, payload)
		}
		if ev.EventID != "0193c9a2-5d1e" || ev.Name != "Lead Created" || ev.Sub != "user-1" {
			t.Errorf("recorded %q/%q/%q", ev.EventID, ev.Name, ev.Sub)
		}
		if !ev.At.Equal(testNow) {
			t.Errorf("At = %v, want %v", ev.At, testNow)
		}
		if f.s.Count() != 1 || f.s.Stats().Accepted != 1 {
			t.Errorf("Count = %d, Accepted = %d", f.s.Count(), f.s.Stats().Accepted)
		}
	})
	t.Run("example Lead Created payload", func(t *testing.T) {
		f := newFixture(t, nil)
		wantStatus(t, f.post(t, f.tok, `{"name":"Lead Created","payload":`+examplePayload+"}"), http.StatusCreated)
		ev := f.s.Received()[0]
		if !bytes.Equal(ev.Payload, []byte(examplePayload)) || ev.EventID != "0193c9a2-5d1e-7c3a-9f0b-2a4e8d6c1b37" {
			t.Errorf("example payload not recorded intact (eventId %q)", ev.EventID)
		}
	})
	t.Run("Content-Type with charset", func(t *testing.T) {
		f := newFixture(t, nil)
		r := f.do(t, http.MethodPost, eventPath, f.tok, "Application/JSON; charset=utf-8", strings.NewReader(leadBody))
		wantStatus(t, r, http.StatusCreated)
	})
	t.Run("escaped keys and name", func(t *testing.T) {
		f := newFixture(t, nil)
		r := f.post(t, f.tok, `{"n\u0061me":"Lead \u0043reated","payload":{"event\u0049d":"e-\u0031"}}`)
		wantStatus(t, r, http.StatusCreated)
		if ev := f.s.Received()[0]; ev.Name != "Lead Created" || ev.EventID != "e-1" {
			t.Errorf("name %q eventId %q", ev.Name, ev.EventID)
		}
	})
	t.Run("keys are case-sensitive and the last duplicate wins", func(t *testing.T) {
		f := newFixture(t, nil)
		r := f.post(t, f.tok, `{"Name":"x","name":"first","name":"Lead Created","payload":{"EventId":"no","eventId":"a","eventId":"b"}}`)
		wantStatus(t, r, http.StatusCreated)
		if ev := f.s.Received()[0]; ev.Name != "Lead Created" || ev.EventID != "b" {
			t.Errorf("name %q eventId %q", ev.Name, ev.EventID)
		}
	})
	t.Run("non-string eventId records empty EventID", func(t *testing.T) {
		f := newFixture(t, nil)
		wantStatus(t, f.post(t, f.tok, `{"name":"Lead Created","payload":{"eventId":42}}`), http.StatusCreated)
		if ev := f.s.Received()[0]; ev.EventID != "" {
			t.Errorf("EventID = %q, want empty", ev.EventID)
		}
	})
}

func TestUnauthorized(t *testing.T) {
	key, other := keys(t)
	now := testNow
	with := func(mut func(jwt.MapClaims)) jwt.MapClaims {
		c := goodClaims(now)
		mut(c)
		return c
	}
	hs256, err := jwt.NewWithClaims(jwt.SigningMethodHS256, goodClaims(now)).SignedString([]byte("shared-secret"))
	if err != nil {
		t.Fatal(err)
	}
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, goodClaims(now)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	ps256, err := jwt.NewWithClaims(jwt.SigningMethodPS256, goodClaims(now)).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		header string // full Authorization header; "" sends none
		reason string // substring of the error
	}{
		{"no header", "", "missing Authorization"},
		{"basic scheme", "Basic dXNlcjpwYXNz", "Bearer"},
		{"empty bearer", "Bearer   ", "empty"},
		{"malformed token", "Bearer not.a.jwt", "malformed"},
		{"wrong key", "Bearer " + sign(t, other, goodClaims(now)), "signature"},
		{"HS256 token", "Bearer " + hs256, "RS256"},
		{"alg none", "Bearer " + none, "RS256"},
		{"PS256 token", "Bearer " + ps256, "RS256"},
		{"expired", "Bearer " + sign(t, key, with(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Second).Unix() })), "expired"},
		{"exp equals now", "Bearer " + sign(t, key, with(func(c jwt.MapClaims) { c["exp"] = now.Unix() })), "expired"},
		{"iat in future", "Bearer " + sign(t, key, with(func(c jwt.MapClaims) { c["iat"] = now.Add(time.Minute).Unix() })), "iat"},
		{"missing iat", "Bearer " + sign(t, key, with(func(c jwt.MapClaims) { delete(c, "iat") })), "iat"},
		{"nbf in future", "Bearer " + sign(t, key, with(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Minute).Unix() })), "nbf"},
		{"missing sub", "Bearer " + sign(t, key, with(func(c jwt.MapClaims) { delete(c, "sub") })), "sub"},
		{"empty sub", "Bearer " + sign(t, key, with(func(c jwt.MapClaims) { c["sub"] = "" })), "sub"},
		{"wrong aud", "Bearer " + sign(t, key, with(func(c jwt.MapClaims) { c["aud"] = "useparagon.com/other-project" })), "aud"},
		{"missing aud", "Bearer " + sign(t, key, with(func(c jwt.MapClaims) { delete(c, "aud") })), "aud"},
		{"missing exp", "Bearer " + sign(t, key, with(func(c jwt.MapClaims) { delete(c, "exp") })), "exp"},
	}
	f := newFixture(t, nil)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, f.ts.URL+eventPath, strings.NewReader(leadBody))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			resp, err := f.ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			r := result{status: resp.StatusCode, header: resp.Header, body: string(b)}
			wantStatus(t, r, http.StatusUnauthorized)
			msg := errorOf(t, r)
			if !strings.Contains(msg, tc.reason) {
				t.Errorf("error %q does not mention %q", msg, tc.reason)
			}
			if tok, ok := strings.CutPrefix(tc.header, "Bearer "); ok && len(strings.TrimSpace(tok)) > 8 && strings.Contains(r.body, strings.TrimSpace(tok)) {
				t.Error("error body echoes the token")
			}
			if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
				t.Errorf("WWW-Authenticate = %q", got)
			}
			if got := f.s.Stats().Rejected401; got != int64(i+1) {
				t.Errorf("Rejected401 = %d, want %d", got, i+1)
			}
		})
	}
	if f.s.Count() != 0 {
		t.Errorf("Count = %d after only bad tokens", f.s.Count())
	}
	t.Run("iat within leeway accepted", func(t *testing.T) {
		c := goodClaims(now)
		c["iat"] = now.Add(IATLeeway - time.Second).Unix()
		wantStatus(t, f.post(t, sign(t, key, c), leadBody), http.StatusCreated)
	})
	t.Run("aud as array containing the project", func(t *testing.T) {
		c := goodClaims(now)
		c["aud"] = []string{"something-else", testAudience}
		wantStatus(t, f.post(t, sign(t, key, c), leadBody), http.StatusCreated)
	})
}

func TestTokenCache(t *testing.T) {
	t.Run("cached token rejected after exp", func(t *testing.T) {
		f := newFixture(t, nil)
		wantStatus(t, f.post(t, f.tok, leadBody), http.StatusCreated)
		wantStatus(t, f.post(t, f.tok, leadBody), http.StatusCreated)
		if st := f.s.Stats(); st.TokenVerifications != 1 || st.TokenCacheHits != 1 {
			t.Fatalf("verifications %d, cache hits %d; want 1, 1", st.TokenVerifications, st.TokenCacheHits)
		}
		f.clock.Advance(time.Hour - time.Second)
		wantStatus(t, f.post(t, f.tok, leadBody), http.StatusCreated)
		f.clock.Advance(time.Second) // now == exp
		r := f.post(t, f.tok, leadBody)
		wantStatus(t, r, http.StatusUnauthorized)
		if msg := errorOf(t, r); !strings.Contains(msg, "expired") {
			t.Errorf("error %q", msg)
		}
		if st := f.s.Stats(); st.TokenVerifications != 1 {
			t.Errorf("expired token was re-verified (%d verifications): the cache path was not exercised", st.TokenVerifications)
		}
	})
	t.Run("cached token still needs the right project", func(t *testing.T) {
		f := newFixture(t, nil)
		wantStatus(t, f.post(t, f.tok, leadBody), http.StatusCreated)
		r := f.do(t, http.MethodPost, "/projects/other-project/sdk/events/trigger", f.tok, "application/json", strings.NewReader(leadBody))
		wantStatus(t, r, http.StatusNotFound)
	})
	t.Run("rejected token is not cached", func(t *testing.T) {
		f := newFixture(t, nil)
		key, _ := keys(t)
		c := goodClaims(f.clock.Now())
		c["iat"] = f.clock.Now().Add(time.Minute).Unix()
		tok := sign(t, key, c)
		wantStatus(t, f.post(t, tok, leadBody), http.StatusUnauthorized)
		f.clock.Advance(time.Minute)
		wantStatus(t, f.post(t, tok, leadBody), http.StatusCreated)
		if st := f.s.Stats(); st.TokenVerifications != 2 || st.TokenCacheHits != 0 {
			t.Errorf("verifications %d, cache hits %d; want 2, 0", st.TokenVerifications, st.TokenCacheHits)
		}
	})
	t.Run("cache bounded", func(t *testing.T) {
		f := newFixture(t, nil)
		f.s.cacheMu.Lock()
		for i := range TokenCacheSize {
			f.s.cache[fmt.Sprint("filler-", i)] = tokenInfo{}
		}
		f.s.cacheMu.Unlock()
		wantStatus(t, f.post(t, f.tok, leadBody), http.StatusCreated)
		f.s.cacheMu.RLock()
		n := len(f.s.cache)
		f.s.cacheMu.RUnlock()
		if n != 1 {
			t.Errorf("cache has %d entries after overflow, want 1", n)
		}
	})
}

func TestRouting(t *testing.T) {
	f := newFixture(t, nil)
	t.Run("404 wrong project", func(t *testing.T) {
		r := f.do(t, http.MethodPost, "/projects/other-project/sdk/events/trigger", f.tok, "application/json", strings.NewReader(leadBody))
		wantStatus(t, r, http.StatusNotFound)
		errorOf(t, r)
	})
	for _, p := range []string{"/", "/projects/" + testProject + "/sdk/me", eventPath + "/", "/projects//sdk/events/trigger", "/v1" + eventPath,
		"/projects/" + testProject + "/sdk/./events/trigger", "/projects/x/../" + testProject + "/sdk/events/trigger"} {
		t.Run("404 path "+p, func(t *testing.T) {
			wantStatus(t, f.do(t, http.MethodPost, p, f.tok, "application/json", strings.NewReader(leadBody)), http.StatusNotFound)
		})
	}
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		t.Run("405 "+m, func(t *testing.T) {
			r := f.do(t, m, eventPath, f.tok, "application/json", nil)
			wantStatus(t, r, http.StatusMethodNotAllowed)
			if got := r.header.Get("Allow"); got != "POST" {
				t.Errorf("Allow = %q", got)
			}
		})
	}
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "application/jsonx"} {
		t.Run("415 Content-Type "+ct, func(t *testing.T) {
			wantStatus(t, f.do(t, http.MethodPost, eventPath, f.tok, ct, strings.NewReader(leadBody)), http.StatusUnsupportedMediaType)
		})
	}
	t.Run("401 before 415", func(t *testing.T) {
		wantStatus(t, f.do(t, http.MethodPost, eventPath, "", "text/plain", strings.NewReader(leadBody)), http.StatusUnauthorized)
	})
	if n := f.s.Count(); n != 0 {
		t.Errorf("Count = %d", n)
	}
	if st := f.s.Stats(); st.Rejected4xx == 0 {
		t.Errorf("Rejected4xx not counted: %+v", st)
	}
}

func TestBadRequest(t *testing.T) {
	f := newFixture(t, nil)
	cases := []struct{ name, body, reason string }{
		{"bad JSON", `{"name":"Lead Created","payload":{}`, "JSON"},
		{"empty body", ``, "JSON"},
		{"trailing garbage", `{"name":"Lead Created","payload":{}} x`, "JSON"},
		{"body is an array", `[{"name":"Lead Created","payload":{}}]`, "object"},
		{"missing name", `{"payload":{}}`, "name"},
		{"empty name", `{"name":"","payload":{}}`, "name"},
		{"name not a string", `{"name":12,"payload":{}}`, "name"},
		{"name null", `{"name":null,"payload":{}}`, "name"},
		{"payload array", `{"name":"Lead Created","payload":[1,2]}`, "payload"},
		{"payload string", `{"name":"Lead Created","payload":"{}"}`, "payload"},
		{"payload null", `{"name":"Lead Created","payload":null}`, "payload"},
		{"missing payload", `{"name":"Lead Created"}`, "payload"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := f.post(t, f.tok, tc.body)
			wantStatus(t, r, http.StatusBadRequest)
			if msg := errorOf(t, r); !strings.Contains(msg, tc.reason) {
				t.Errorf("error %q does not mention %q", msg, tc.reason)
			}
		})
	}
	if f.s.Count() != 0 || f.s.Stats().Rejected4xx != int64(len(cases)) {
		t.Errorf("Count %d, Rejected4xx %d", f.s.Count(), f.s.Stats().Rejected4xx)
	}
}

// chunked hides the length of its content so the client sends it chunked.
type chunked struct{ r io.Reader }

func (c chunked) Read(p []byte) (int, error) { return c.r.Read(p) }

func TestTooLarge(t *testing.T) {
	const limit = 1024
	f := newFixture(t, func(c *Config) { c.MaxBody = limit })
	pad := strings.Repeat("x", limit)
	big := `{"name":"Lead Created","payload":{"pad":"` + pad + `"}}`
	t.Run("413 with Content-Length", func(t *testing.T) {
		wantStatus(t, f.post(t, f.tok, big), http.StatusRequestEntityTooLarge)
	})
	t.Run("413 chunked", func(t *testing.T) {
		r := f.do(t, http.MethodPost, eventPath, f.tok, "application/json", chunked{strings.NewReader(big)})
		wantStatus(t, r, http.StatusRequestEntityTooLarge)
	})
	t.Run("exactly the limit is accepted", func(t *testing.T) {
		head, tail := `{"name":"Lead Created","payload":{"pad":"`, `"}}`
		body := head + strings.Repeat("y", limit-len(head)-len(tail)) + tail
		wantStatus(t, f.do(t, http.MethodPost, eventPath, f.tok, "application/json", chunked{strings.NewReader(body)}), http.StatusCreated)
	})
	t.Run("default limit is 1 MiB", func(t *testing.T) {
		g := newFixture(t, nil)
		body := `{"name":"Lead Created","payload":{"pad":"` + strings.Repeat("z", int(DefaultMaxBody)) + `"}}`
		wantStatus(t, g.post(t, g.tok, body), http.StatusRequestEntityTooLarge)
	})
}

func TestFaults(t *testing.T) {
	t.Run("injected 500 with Fail500=1", func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.Faults = Faults{Fail500: 1} })
		for range 3 {
			r := f.post(t, f.tok, leadBody)
			wantStatus(t, r, http.StatusInternalServerError)
			errorOf(t, r)
		}
		if st := f.s.Stats(); st.Injected500 != 3 || f.s.Count() != 0 {
			t.Errorf("Injected500 %d, Count %d", st.Injected500, f.s.Count())
		}
	})
	t.Run("401 stays 401 under faults", func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.Faults = Faults{Fail500: 1} })
		wantStatus(t, f.post(t, "", leadBody), http.StatusUnauthorized)
		wantStatus(t, f.post(t, f.tok, `{"name":""}`), http.StatusBadRequest)
	})
	t.Run("429 carries Retry-After", func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.Faults = Faults{Fail429: 1} })
		r := f.post(t, f.tok, leadBody)
		wantStatus(t, r, http.StatusTooManyRequests)
		if got := r.header.Get("Retry-After"); got != "1" {
			t.Errorf("Retry-After = %q, want default 1", got)
		}
		date := testNow.Add(time.Minute).Format(http.TimeFormat)
		f.s.SetFaults(Faults{Fail429: 1, RetryAfter: date})
		r = f.post(t, f.tok, leadBody)
		wantStatus(t, r, http.StatusTooManyRequests)
		if got := r.header.Get("Retry-After"); got != date {
			t.Errorf("Retry-After = %q, want %q", got, date)
		}
		if st := f.s.Stats(); st.Injected429 != 2 || f.s.Count() != 0 {
			t.Errorf("Injected429 %d, Count %d", st.Injected429, f.s.Count())
		}
	})
	t.Run("SetFaults at run time", func(t *testing.T) {
		f := newFixture(t, nil)
		wantStatus(t, f.post(t, f.tok, leadBody), http.StatusCreated)
		f.s.SetFaults(Faults{Fail500: 1})
		wantStatus(t, f.post(t, f.tok, leadBody), http.StatusInternalServerError)
		f.s.SetFaults(Faults{})
		wantStatus(t, f.post(t, f.tok, leadBody), http.StatusCreated)
		if got := f.s.Faults(); got.SlowDelay != DefaultSlowDelay || got.RetryAfter != DefaultRetryAfter {
			t.Errorf("defaults not applied: %+v", got)
		}
		f.s.SetFaults(Faults{Fail500: 7, Drop: -1})
		if got := f.s.Faults(); got.Fail500 != 1 || got.Drop != 0 {
			t.Errorf("shares not clamped: %+v", got)
		}
	})
	t.Run("mixed shares give both outcomes", func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.Faults = Faults{Fail500: 0.5} })
		seen := map[int]int{}
		for range 100 {
			seen[f.post(t, f.tok, leadBody).status]++
		}
		if seen[201] == 0 || seen[500] == 0 || seen[201]+seen[500] != 100 {
			t.Errorf("statuses %v", seen) // fails with probability 2^-99
		}
		if f.s.Count() != seen[201] {
			t.Errorf("Count %d, 201s %d", f.s.Count(), seen[201])
		}
	})
	t.Run("Drop gives a client-side error", func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.Faults = Faults{Drop: 1} })
		client := &http.Client{Transport: &http.Transport{}}
		defer client.CloseIdleConnections()
		_, err := f.send(context.Background(), client, http.MethodPost, eventPath, f.tok, "application/json", strings.NewReader(leadBody))
		if err == nil {
			t.Fatal("request succeeded, want a connection error")
		}
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("error %v is neither EOF nor connection reset", err)
		}
		if st := f.s.Stats(); st.InjectedDrop != 1 || f.s.Count() != 0 {
			t.Errorf("InjectedDrop %d, Count %d", st.InjectedDrop, f.s.Count())
		}
	})
	t.Run("Slow honours cancel", func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.Faults = Faults{Slow: 1, SlowDelay: hugeSlowTestDelay} })
		ctx, cancel := context.WithTimeout(context.Background(), cancelAfterTimeout)
		defer cancel()
		start := time.Now()
		_, err := f.send(ctx, f.ts.Client(), http.MethodPost, eventPath, f.tok, "application/json", strings.NewReader(leadBody))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want deadline exceeded", err)
		}
		f.ts.Close() // waits for the handler, which must end on the client's hang-up
		if d := time.Since(start); d > hugeSlowTestDelay/2 {
			t.Errorf("handler ran %v after the client gave up", d)
		}
		if st := f.s.Stats(); st.InjectedSlow != 1 || st.Canceled != 1 || f.s.Count() != 0 {
			t.Errorf("InjectedSlow %d, Canceled %d, Count %d", st.InjectedSlow, st.Canceled, f.s.Count())
		}
	})
	t.Run("Slow answers 201 after SlowDelay", func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.Faults = Faults{Slow: 1, SlowDelay: slowTestDelay} })
		start := time.Now()
		wantStatus(t, f.post(t, f.tok, leadBody), http.StatusCreated)
		if d := time.Since(start); d < slowTestDelay {
			t.Errorf("answered after %v, want >= %v", d, slowTestDelay)
		}
		if f.s.Count() != 1 {
			t.Errorf("Count = %d", f.s.Count())
		}
	})
	t.Run("Latency delays every request", func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.Faults = Faults{Latency: slowTestDelay} })
		for _, tok := range []string{f.tok, ""} {
			start := time.Now()
			f.post(t, tok, leadBody)
			if d := time.Since(start); d < slowTestDelay {
				t.Errorf("answered after %v, want >= %v", d, slowTestDelay)
			}
		}
	})
	t.Run("Latency honours cancel", func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.Faults = Faults{Latency: hugeSlowTestDelay} })
		ctx, cancel := context.WithTimeout(context.Background(), cancelAfterTimeout)
		defer cancel()
		start := time.Now()
		_, err := f.send(ctx, f.ts.Client(), http.MethodPost, eventPath, f.tok, "application/json", strings.NewReader(leadBody))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want deadline exceeded", err)
		}
		f.ts.Close()
		if d := time.Since(start); d > hugeSlowTestDelay/2 {
			t.Errorf("handler ran %v after the client gave up", d)
		}
		if st := f.s.Stats(); st.Canceled != 1 || f.s.Count() != 0 {
			t.Errorf("Canceled %d, Count %d", st.Canceled, f.s.Count())
		}
	})
}

func TestRejectFunc(t *testing.T) {
	f := newFixture(t, nil)
	var kept json.RawMessage
	f.s.SetRejectFunc(func(name, sub string, payload json.RawMessage) int {
		var p struct {
			EventID string `json:"eventId"`
		}
		if err := json.Unmarshal(payload, &p); err != nil || name != "Lead Created" || sub != "user-1" {
			return http.StatusInternalServerError
		}
		if p.EventID == "poison" {
			kept = payload
			return http.StatusUnprocessableEntity
		}
		return 0
	})
	r := f.post(t, f.tok, `{"name":"Lead Created","payload":{"eventId":"poison"}}`)
	wantStatus(t, r, http.StatusUnprocessableEntity)
	if e := errorOf(t, r); e != "rejected by this local endpoint's reject rule" {
		t.Errorf("error %q", e)
	}
	wantStatus(t, f.post(t, f.tok, leadBody), http.StatusCreated)
	if f.s.Count() != 1 || f.s.Received()[0].EventID != "e-1" {
		t.Errorf("Count %d", f.s.Count())
	}
	if string(kept) != `{"eventId":"poison"}` {
		t.Errorf("payload kept by RejectFunc changed: %q", kept)
	}
	if st := f.s.Stats(); st.Rejected4xx != 1 {
		t.Errorf("Rejected4xx = %d", st.Rejected4xx)
	}
	f.s.SetRejectFunc(func(string, string, json.RawMessage) int { return 302 })
	wantStatus(t, f.post(t, f.tok, leadBody), http.StatusInternalServerError)
	f.s.SetRejectFunc(nil)
	wantStatus(t, f.post(t, f.tok, leadBody), http.StatusCreated)

	// SetRejectReasonFunc: the reason is the error.
	f.s.SetRejectReasonFunc(func(string, string, json.RawMessage) (int, string) {
		return http.StatusBadRequest, "field email is missing"
	})
	r = f.post(t, f.tok, leadBody)
	wantStatus(t, r, http.StatusBadRequest)
	if e := errorOf(t, r); e != "rejected: field email is missing" {
		t.Errorf("error %q", e)
	}
	f.s.SetRejectReasonFunc(nil)
	wantStatus(t, f.post(t, f.tok, leadBody), http.StatusCreated)
}

func TestCountByEventID(t *testing.T) {
	f := newFixture(t, nil)
	for _, id := range []string{"e-1", "e-2", "e-1", "e-3", "e-1"} {
		wantStatus(t, f.post(t, f.tok, `{"name":"Lead Created","payload":{"eventId":"`+id+`"}}`), http.StatusCreated)
	}
	wantStatus(t, f.post(t, f.tok, `{"name":"Lead Created","payload":{}}`), http.StatusCreated)
	got := f.s.CountByEventID()
	want := map[string]int{"e-1": 3, "e-2": 1, "e-3": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("CountByEventID = %v, want %v", got, want)
	}
	got["e-1"] = 100 // a copy
	if f.s.CountByEventID()["e-1"] != 3 {
		t.Error("CountByEventID returned the internal map")
	}
	if f.s.Count() != 6 {
		t.Errorf("Count = %d", f.s.Count())
	}
}

func TestWaitForCount(t *testing.T) {
	t.Run("returns when count reached", func(t *testing.T) {
		f := newFixture(t, nil)
		ctx, cancel := context.WithTimeout(context.Background(), maxTestWait)
		defer cancel()
		done := make(chan error, 2)
		go func() { done <- f.s.WaitForCount(ctx, 3) }()
		go func() { done <- f.s.WaitForCount(ctx, 1) }()
		for range 3 {
			wantStatus(t, f.post(t, f.tok, leadBody), http.StatusCreated)
		}
		for range 2 {
			if err := <-done; err != nil {
				t.Fatalf("WaitForCount: %v", err)
			}
		}
		if err := f.s.WaitForCount(ctx, 3); err != nil {
			t.Errorf("WaitForCount on reached count: %v", err)
		}
	})
	t.Run("times out otherwise", func(t *testing.T) {
		f := newFixture(t, nil)
		wantStatus(t, f.post(t, f.tok, leadBody), http.StatusCreated)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if err := f.s.WaitForCount(ctx, 2); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want deadline exceeded", err)
		}
		f.s.mu.Lock()
		n := len(f.s.waiters)
		f.s.mu.Unlock()
		if n != 0 {
			t.Errorf("%d waiters left registered after timeout", n)
		}
	})
}

func TestConcurrent(t *testing.T) {
	const workers, each = 50, 20
	f := newFixture(t, nil)
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				body := fmt.Sprintf(`{"name":"Lead Created","payload":{"eventId":"w%d-%d","n":%d}}`, w, i, i)
				r, err := f.send(context.Background(), f.ts.Client(), http.MethodPost, eventPath, f.tok, "application/json", strings.NewReader(body))
				if err == nil && r.status != http.StatusCreated {
					err = fmt.Errorf("status %d: %s", r.status, r.body)
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := f.s.Count(); n != workers*each {
		t.Errorf("Count = %d, want %d", n, workers*each)
	}
	ids := f.s.CountByEventID()
	if len(ids) != workers*each {
		t.Errorf("%d distinct eventIds, want %d", len(ids), workers*each)
	}
	st := f.s.Stats()
	if st.Accepted != workers*each || st.TokenVerifications+st.TokenCacheHits != workers*each || st.TokenVerifications > workers {
		t.Errorf("stats %+v", st)
	}
}

func TestDiscardPayloads(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.DiscardPayloads = true })
	for range 2 {
		wantStatus(t, f.post(t, f.tok, leadBody), http.StatusCreated)
	}
	ev := f.s.Received()
	if len(ev) != 2 || ev[0].Payload != nil || ev[0].EventID != "e-1" || ev[0].Name != "Lead Created" {
		t.Errorf("Received = %+v", ev)
	}
	if got := f.s.CountByEventID()["e-1"]; got != 2 {
		t.Errorf("CountByEventID[e-1] = %d", got)
	}
}

func TestRecorder(t *testing.T) {
	var buf testutil.SyncBuffer
	f := newFixture(t, func(c *Config) { c.Recorder = &buf })
	wantStatus(t, f.post(t, f.tok, `{"name":"Lead Created","payload":{"eventId":"e-9",`+"\n"+` "big":9007199254740993,"html":"<a&b>"}}`), http.StatusCreated)
	wantStatus(t, f.post(t, f.tok, leadBody), http.StatusCreated)
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2: %q", len(lines), buf.String())
	}
	dec := json.NewDecoder(strings.NewReader(lines[0]))
	dec.UseNumber()
	var l struct {
		At      time.Time
		EventID string `json:"eventId"`
		Name    string
		Sub     string
		Payload struct {
			Big  json.Number `json:"big"`
			HTML string      `json:"html"`
		}
	}
	if err := dec.Decode(&l); err != nil {
		t.Fatalf("line %q: %v", lines[0], err)
	}
	if l.EventID != "e-9" || l.Name != "Lead Created" || l.Sub != "user-1" || l.Payload.Big != "9007199254740993" || l.Payload.HTML != "<a&b>" || !l.At.Equal(testNow) {
		t.Errorf("line decoded to %+v", l)
	}
}

func TestReset(t *testing.T) {
	f := newFixture(t, nil)
	wantStatus(t, f.post(t, f.tok, leadBody), http.StatusCreated)
	wantStatus(t, f.post(t, "", leadBody), http.StatusUnauthorized)
	f.s.Reset()
	if f.s.Count() != 0 || len(f.s.Received()) != 0 || len(f.s.CountByEventID()) != 0 || f.s.Stats() != (Stats{}) {
		t.Errorf("after Reset: Count %d, Stats %+v", f.s.Count(), f.s.Stats())
	}
	wantStatus(t, f.post(t, f.tok, leadBody), http.StatusCreated)
	if f.s.Count() != 1 || f.s.CountByEventID()["e-1"] != 1 {
		t.Errorf("after Reset and one event: Count %d", f.s.Count())
	}
}

func TestNew(t *testing.T) {
	key, _ := keys(t)
	cases := []struct {
		name  string
		cfg   Config
		field string
	}{
		{"missing project", Config{PublicKey: &key.PublicKey}, "ProjectID"},
		{"slash in project", Config{ProjectID: "a/b", PublicKey: &key.PublicKey}, "ProjectID"},
		{"missing key", Config{ProjectID: testProject}, "PublicKey"},
		{"negative MaxBody", Config{ProjectID: testProject, PublicKey: &key.PublicKey, MaxBody: -1}, "MaxBody"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("New error %v does not name %s", err, tc.field)
			}
		})
	}
}

func TestStart(t *testing.T) {
	key, _ := keys(t)
	s, err := New(Config{ProjectID: testProject, PublicKey: &key.PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	base, stop, err := Start("127.0.0.1:0", s)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Errorf("base URL %q", base)
	}
	req, _ := http.NewRequest(http.MethodPost, base+eventPath, strings.NewReader(leadBody))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+sign(t, key, goodClaims(time.Now())))
	client := &http.Client{Transport: &http.Transport{}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d", resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), maxTestWait)
	defer cancel()
	if err := stop(ctx); err != nil {
		t.Errorf("stop: %v", err)
	}
	if err := stop(ctx); err != nil {
		t.Errorf("second stop: %v", err)
	}
	client.CloseIdleConnections()
	if _, err := client.Post(base+eventPath, "application/json", strings.NewReader(leadBody)); err == nil {
		t.Error("server still answering after stop")
	}
	t.Run("unspecified host reported as 127.0.0.1", func(t *testing.T) {
		base, stop, err := Start(":0", s)
		if err != nil {
			t.Fatal(err)
		}
		defer stop(ctx)
		if !strings.HasPrefix(base, "http://127.0.0.1:") {
			t.Errorf("base URL %q", base)
		}
	})
	t.Run("stop cancels slow requests when its context ends", func(t *testing.T) {
		s.SetFaults(Faults{Slow: 1, SlowDelay: hugeSlowTestDelay})
		defer s.SetFaults(Faults{})
		base, stop, err := Start("127.0.0.1:0", s)
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan int, 1)
		tok := sign(t, key, goodClaims(time.Now()))
		go func() {
			req, _ := http.NewRequest(http.MethodPost, base+eventPath, strings.NewReader(leadBody))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := (&http.Client{Transport: &http.Transport{}}).Do(req)
			if err != nil {
				got <- 0
				return
			}
			resp.Body.Close()
			got <- resp.StatusCode
		}()
		// Shut down once the request is being held (no sleeping: watch the counter).
		waitCtx, waitCancel := context.WithTimeout(context.Background(), maxTestWait)
		defer waitCancel()
		for s.Stats().InjectedSlow == 0 {
			select {
			case <-waitCtx.Done():
				t.Fatal("request never reached the server")
			case <-time.After(time.Millisecond):
			}
		}
		sctx, scancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer scancel()
		if err := stop(sctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("stop = %v, want deadline exceeded", err)
		}
		if code := <-got; code != 0 && code != http.StatusServiceUnavailable {
			t.Errorf("held request answered %d", code)
		}
	})
}

func TestListenAndServe(t *testing.T) {
	key, _ := keys(t)
	s, err := New(Config{ProjectID: testProject, PublicKey: &key.PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ListenAndServe(ctx, "127.0.0.1:0", s) }()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("ListenAndServe = %v, want nil", err)
	}
	if err := ListenAndServe(context.Background(), "256.0.0.1:0", s); err == nil {
		t.Error("ListenAndServe on a bad address succeeded")
	}
}

func TestGenerateKey(t *testing.T) {
	key, pemBytes, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemBytes)
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatal("PEM is not a PKCS#8 PRIVATE KEY block")
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal("PKCS#8 does not parse")
	}
	if rk, ok := parsed.(*rsa.PrivateKey); !ok || !rk.Equal(key) || key.N.BitLen() != 2048 {
		t.Error("PEM does not hold the returned 2048-bit key")
	}
}

func TestMembers(t *testing.T) {
	cases := []struct {
		in, k1, k2, v1, v2 string
	}{
		{`{}`, "a", "b", "", ""},
		{` { "a" : 1 , "b":[1,{"a":2}] } `, "a", "b", "1", `[1,{"a":2}]`},
		{`{"x":"a\"}b","a":"q\\","b":{"c":"}"}}`, "a", "b", `"q\\"`, `{"c":"}"}`},
		{`{"a":true,"b":null,"a":false}`, "a", "b", "false", "null"},
		{`{"A":1,"\u0061":2}`, "a", "", "2", ""},
		{`{"a":-1.5e+3}`, "a", "", "-1.5e+3", ""},
	}
	for _, tc := range cases {
		if !json.Valid([]byte(tc.in)) {
			t.Fatalf("bad case %s", tc.in)
		}
		v1, v2 := members([]byte(tc.in), tc.k1, tc.k2)
		if string(v1) != tc.v1 || string(v2) != tc.v2 {
			t.Errorf("members(%s) = %q, %q; want %q, %q", tc.in, v1, v2, tc.v1, tc.v2)
		}
	}
}

// BenchmarkServeHTTP measures the handler's hot path: a valid, cached token
// and the Lead Created example payload, straight into ServeHTTP with an
// httptest.ResponseRecorder (no network).
func BenchmarkServeHTTP(b *testing.B) {
	for _, discard := range []bool{false, true} {
		b.Run(fmt.Sprintf("DiscardPayloads=%v", discard), func(b *testing.B) {
			key, _ := keys(b)
			s, err := New(Config{ProjectID: testProject, PublicKey: &key.PublicKey, DiscardPayloads: discard})
			if err != nil {
				b.Fatal(err)
			}
			body := []byte(`{"name":"Lead Created","payload":` + examplePayload + `}`)
			req := httptest.NewRequest(http.MethodPost, eventPath, nil)
			req.Header.Set("Authorization", "Bearer "+sign(b, key, goodClaims(time.Now())))
			req.Header.Set("Content-Type", "application/json")
			req.ContentLength = int64(len(body))
			rd := bytes.NewReader(body)
			req.Body = io.NopCloser(rd)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				rd.Reset(body)
				w := httptest.NewRecorder()
				s.ServeHTTP(w, req)
				if w.Code != http.StatusCreated {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
}

// BenchmarkHTTP measures whole requests over loopback HTTP/1.1 keep-alive
// connections (client and server share the machine's cores), so 1e9/(ns/op)
// is a pessimistic requests-per-second figure for the server.
func BenchmarkHTTP(b *testing.B) {
	key, _ := keys(b)
	s, err := New(Config{ProjectID: testProject, PublicKey: &key.PublicKey, DiscardPayloads: true})
	if err != nil {
		b.Fatal(err)
	}
	base, stop, err := Start("127.0.0.1:0", s)
	if err != nil {
		b.Fatal(err)
	}
	defer stop(context.Background())
	body := []byte(`{"name":"Lead Created","payload":` + examplePayload + `}`)
	auth := "Bearer " + sign(b, key, goodClaims(time.Now()))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, base+eventPath, bytes.NewReader(body))
			req.Header.Set("Authorization", auth)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}
