package paragon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/paragon"
)

// fakeParagon is a real HTTP server standing in for Paragon. It records
// every request and counts the TCP connections clients open.
type fakeParagon struct {
	srv      *httptest.Server
	hits     atomic.Int64
	newConns atomic.Int64

	mu   sync.Mutex
	reqs []recordedRequest
}

type recordedRequest struct {
	Method, Path string
	Header       http.Header
	Body         []byte
}

func newFakeParagon(t *testing.T, h http.HandlerFunc) *fakeParagon {
	t.Helper()
	f := &fakeParagon{}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("server: read body: %v", err)
		}
		f.mu.Lock()
		f.reqs = append(f.reqs, recordedRequest{Method: r.Method, Path: r.URL.EscapedPath(), Header: r.Header.Clone(), Body: body})
		f.mu.Unlock()
		h(w, r)
	}))
	f.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.newConns.Add(1)
		}
	}
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeParagon) last(t *testing.T) recordedRequest {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		t.Fatal("server got no request")
	}
	return f.reqs[len(f.reqs)-1]
}

func status(code int, body string, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(code)
		io.WriteString(w, body)
	}
}

func newTestClient(t *testing.T, baseURL string, clock *fakeClock, mod func(*paragon.ClientConfig)) *paragon.Client {
	t.Helper()
	c := paragon.ClientConfig{
		BaseURL:   baseURL,
		ProjectID: testProject,
		Tokens:    newTokens(t, clock, nil),
		Now:       clock.Now,
	}
	if mod != nil {
		mod(&c)
	}
	cl, err := paragon.NewClient(c)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return cl
}

const payloadMarker = "PAYLOAD-MARKER-7f3a"

// A payload that a decode/re-encode round trip would change: an integer
// beyond float64 precision, escapes, Unicode, whitespace and newlines.
const trickyPayload = "{\n  \"eventId\": \"" + payloadMarker + "\",\n" +
	"  \"big\": 9007199254740993,\n" +
	"  \"firstName\": \"Zoë\", \"company\": \"日本語 株式会社 🚀\",\n" +
	"  \"note\": \"she said \\\"hi\\\"\\nsecond line\\ttab \\u00e9 \\/ <b>&amp;</b>\",\n" +
	"  \"nested\": {\"a\": [1, 2.50, -0, 1e3, true, null]}\r\n}"

func TestClientSend(t *testing.T) {
	ctx := context.Background()
	ev := paragon.Event{Name: "Lead Created", UserID: "user-42", Payload: []byte(trickyPayload)}

	// assertNoSecrets checks that the error text carries neither the token
	// the server saw nor any part of the payload.
	assertNoSecrets := func(t *testing.T, f *fakeParagon, res paragon.Result) {
		t.Helper()
		if res.Err == nil {
			return
		}
		msg := res.Err.Error()
		if strings.Contains(msg, payloadMarker) || strings.Contains(msg, "9007199254740993") {
			t.Errorf("error contains the payload: %q", msg)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, r := range f.reqs {
			tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
			sig := tok[strings.LastIndex(tok, ".")+1:]
			if strings.Contains(msg, tok) || strings.Contains(msg, sig[:20]) {
				t.Errorf("error contains the token: %q", msg)
			}
		}
	}

	t.Run("201 delivered", func(t *testing.T) {
		clock := newFakeClock(t0)
		f := newFakeParagon(t, status(http.StatusCreated, `{"ok":true}`))
		c := newTestClient(t, f.srv.URL, clock, nil)
		res := c.Send(ctx, ev)
		if res.Outcome != paragon.Delivered || res.Status != 201 || res.Err != nil || res.Systemic || res.RetryAfter != 0 {
			t.Fatalf("result = %+v", res)
		}
		if res.Started.IsZero() || res.Finished.Before(res.Started) {
			t.Fatalf("Started %s, Finished %s", res.Started, res.Finished)
		}
		r := f.last(t)
		if r.Method != http.MethodPost {
			t.Errorf("method = %s", r.Method)
		}
		if want := "/projects/" + testProject + "/sdk/events/trigger"; r.Path != want {
			t.Errorf("path = %s, want %s", r.Path, want)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
		auth := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok {
			t.Fatalf("Authorization = %q, want Bearer <jwt>", auth)
		}
		if claims := verifyToken(t, tok, &testKey().PublicKey, clock.Now()); claims.Subject != "user-42" {
			t.Errorf("token sub = %q", claims.Subject)
		}
		want := `{"name":"Lead Created","payload":` + trickyPayload + `}`
		if !bytes.Equal(r.Body, []byte(want)) {
			t.Fatalf("body =\n%s\nwant\n%s", r.Body, want)
		}
		// And it is JSON Paragon can read, big integer intact.
		var decoded struct {
			Name    string
			Payload map[string]json.RawMessage
		}
		if err := json.Unmarshal(r.Body, &decoded); err != nil {
			t.Fatalf("body is not JSON: %v", err)
		}
		if decoded.Name != "Lead Created" || string(decoded.Payload["big"]) != "9007199254740993" {
			t.Fatalf("decoded = %+v", decoded)
		}
		if got := r.Header.Get("X-Paragon-Credential"); got != "" {
			t.Errorf("X-Paragon-Credential = %q, want none", got)
		}
	})

	t.Run("other 2xx delivered", func(t *testing.T) {
		f := newFakeParagon(t, status(http.StatusOK, ""))
		res := newTestClient(t, f.srv.URL, newFakeClock(t0), nil).Send(ctx, ev)
		if res.Outcome != paragon.Delivered || res.Status != 200 || res.Err != nil {
			t.Fatalf("result = %+v", res)
		}
	})

	for _, tc := range []struct {
		code     int
		outcome  paragon.Outcome
		systemic bool
	}{
		{500, paragon.Retry, true},
		{502, paragon.Retry, true},
		{503, paragon.Retry, true},
		{400, paragon.Rejected, false},
		{413, paragon.Rejected, false},
		{422, paragon.Rejected, false},
		{401, paragon.Retry, true},
		{403, paragon.Retry, true},
		{404, paragon.Retry, true},
	} {
		t.Run(fmt.Sprintf("%d %s", tc.code, tc.outcome), func(t *testing.T) {
			f := newFakeParagon(t, status(tc.code, `{"message":"nope"}`))
			res := newTestClient(t, f.srv.URL, newFakeClock(t0), nil).Send(ctx, ev)
			if res.Outcome != tc.outcome || res.Systemic != tc.systemic || res.Status != tc.code {
				t.Fatalf("result = %+v, want %s systemic=%v status %d", res, tc.outcome, tc.systemic, tc.code)
			}
			if res.Err == nil || !strings.Contains(res.Err.Error(), fmt.Sprint(tc.code)) || !strings.Contains(res.Err.Error(), "nope") {
				t.Fatalf("Err = %v, want the status and the body excerpt", res.Err)
			}
			if res.RetryAfter != 0 {
				t.Fatalf("RetryAfter = %s without a header", res.RetryAfter)
			}
			if f.hits.Load() != 1 {
				t.Fatalf("server hits = %d, want 1", f.hits.Load())
			}
			assertNoSecrets(t, f, res)
		})
	}

	t.Run("429 Retry-After seconds", func(t *testing.T) {
		f := newFakeParagon(t, status(http.StatusTooManyRequests, "slow down", "Retry-After", "7"))
		res := newTestClient(t, f.srv.URL, newFakeClock(t0), nil).Send(ctx, ev)
		if res.Outcome != paragon.Retry || !res.Systemic || res.Status != 429 || res.RetryAfter != 7*time.Second {
			t.Fatalf("result = %+v", res)
		}
		assertNoSecrets(t, f, res)
	})

	t.Run("429 Retry-After HTTP-date", func(t *testing.T) {
		clock := newFakeClock(t0)
		at := t0.Add(90 * time.Second).UTC().Format(http.TimeFormat) // HTTP-date drops the fraction: 89.3s from t0
		f := newFakeParagon(t, status(http.StatusTooManyRequests, "", "Retry-After", at))
		res := newTestClient(t, f.srv.URL, clock, nil).Send(ctx, ev)
		want := t0.Add(90 * time.Second).Truncate(time.Second).Sub(t0)
		if res.Outcome != paragon.Retry || res.Status != 429 || res.RetryAfter != want {
			t.Fatalf("result = %+v, want RetryAfter %s", res, want)
		}
	})

	t.Run("503 Retry-After clamped to MaxRetryAfter", func(t *testing.T) {
		f := newFakeParagon(t, status(http.StatusServiceUnavailable, "", "Retry-After", "86400"))
		res := newTestClient(t, f.srv.URL, newFakeClock(t0), func(c *paragon.ClientConfig) { c.MaxRetryAfter = time.Minute }).Send(ctx, ev)
		if res.Outcome != paragon.Retry || res.RetryAfter != time.Minute {
			t.Fatalf("result = %+v", res)
		}
	})

	t.Run("redirect not followed", func(t *testing.T) {
		f := newFakeParagon(t, status(http.StatusTemporaryRedirect, "", "Location", "/elsewhere"))
		res := newTestClient(t, f.srv.URL, newFakeClock(t0), nil).Send(ctx, ev)
		if res.Outcome != paragon.Retry || !res.Systemic || res.Status != 307 {
			t.Fatalf("result = %+v", res)
		}
		if f.hits.Load() != 1 {
			t.Fatalf("server hits = %d: the redirect was followed", f.hits.Load())
		}
	})

	t.Run("timeout", func(t *testing.T) {
		release := make(chan struct{})
		f := newFakeParagon(t, func(w http.ResponseWriter, r *http.Request) {
			// Answer only after the client has given up (or at cleanup).
			select {
			case <-r.Context().Done():
			case <-release:
			}
		})
		t.Cleanup(func() { close(release) }) // runs before f.srv.Close
		c := newTestClient(t, f.srv.URL, newFakeClock(t0), func(c *paragon.ClientConfig) { c.Timeout = 100 * time.Millisecond })
		res := c.Send(ctx, ev)
		if res.Outcome != paragon.Retry || !res.Systemic || res.Status != 0 {
			t.Fatalf("result = %+v", res)
		}
		if res.Err == nil || !strings.Contains(res.Err.Error(), "no answer from Paragon within 100ms") {
			t.Fatalf("Err = %v", res.Err)
		}
		if !errors.Is(res.Err, context.DeadlineExceeded) {
			t.Errorf("Err %v does not wrap context.DeadlineExceeded", res.Err)
		}
		assertNoSecrets(t, f, res)
	})

	t.Run("connection refused", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		res := newTestClient(t, url, newFakeClock(t0), nil).Send(ctx, ev)
		if res.Outcome != paragon.Retry || !res.Systemic || res.Status != 0 || res.Err == nil {
			t.Fatalf("result = %+v", res)
		}
		if !strings.Contains(res.Err.Error(), "request to Paragon failed") {
			t.Fatalf("Err = %v", res.Err)
		}
		if strings.Contains(res.Err.Error(), payloadMarker) {
			t.Fatalf("Err contains the payload: %v", res.Err)
		}
	})

	t.Run("cancelled context", func(t *testing.T) {
		f := newFakeParagon(t, status(201, ""))
		c := newTestClient(t, f.srv.URL, newFakeClock(t0), nil)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		res := c.Send(cctx, ev)
		if res.Outcome != paragon.Retry || res.Status != 0 || !errors.Is(res.Err, context.Canceled) {
			t.Fatalf("result = %+v", res)
		}
		if strings.Contains(res.Err.Error(), "no answer") {
			t.Fatalf("a cancellation is reported as a timeout: %v", res.Err)
		}
	})

	t.Run("cancelled in flight", func(t *testing.T) {
		arrived := make(chan struct{})
		f := newFakeParagon(t, func(w http.ResponseWriter, r *http.Request) {
			close(arrived)
			<-r.Context().Done()
		})
		c := newTestClient(t, f.srv.URL, newFakeClock(t0), nil)
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan paragon.Result)
		go func() { done <- c.Send(cctx, ev) }()
		<-arrived
		cancel()
		res := <-done
		if res.Outcome != paragon.Retry || res.Status != 0 || !errors.Is(res.Err, context.Canceled) {
			t.Fatalf("result = %+v", res)
		}
	})

	t.Run("payload over MaxPayloadBytes", func(t *testing.T) {
		f := newFakeParagon(t, status(201, ""))
		c := newTestClient(t, f.srv.URL, newFakeClock(t0), func(c *paragon.ClientConfig) { c.MaxPayloadBytes = 1024 })
		mk := func(n int) []byte { // a JSON object of exactly n bytes
			return []byte(`{"pad":"` + strings.Repeat("x", n-10) + `"}`)
		}
		res := c.Send(ctx, paragon.Event{Name: "Lead Created", UserID: "u", Payload: mk(1025)})
		if res.Outcome != paragon.Rejected || res.Systemic || res.Status != 0 || res.Err == nil {
			t.Fatalf("result = %+v", res)
		}
		if !strings.Contains(res.Err.Error(), "1025") || strings.Contains(res.Err.Error(), "xxxx") {
			t.Fatalf("Err = %v", res.Err)
		}
		if n := f.hits.Load(); n != 0 {
			t.Fatalf("server hits = %d, want 0", n)
		}
		// The limit itself is allowed.
		if res := c.Send(ctx, paragon.Event{Name: "Lead Created", UserID: "u", Payload: mk(1024)}); res.Outcome != paragon.Delivered {
			t.Fatalf("payload of exactly the limit: %+v", res)
		}
	})

	t.Run("payload not a JSON object", func(t *testing.T) {
		f := newFakeParagon(t, status(201, ""))
		c := newTestClient(t, f.srv.URL, newFakeClock(t0), nil)
		for _, p := range []string{`[1]`, `nope`, ``, `   `, `"str"`, `42`, `null`, `{"a":1`, `{"a":1}{"b":2}`, `{"a":1} x`, "\xff{}"} {
			res := c.Send(ctx, paragon.Event{Name: "Lead Created", UserID: "u", Payload: []byte(p)})
			if res.Outcome != paragon.Rejected || res.Systemic || res.Err == nil {
				t.Errorf("payload %q: result = %+v", p, res)
			}
		}
		if n := f.hits.Load(); n != 0 {
			t.Fatalf("server hits = %d, want 0", n)
		}
		// Surrounding JSON whitespace is fine and kept as is.
		res := c.Send(ctx, paragon.Event{Name: "Lead Created", UserID: "u", Payload: []byte(" \n{} \t")})
		if res.Outcome != paragon.Delivered || string(f.last(t).Body) != "{\"name\":\"Lead Created\",\"payload\": \n{} \t}" {
			t.Fatalf("result %+v, body %q", res, f.last(t).Body)
		}
	})

	t.Run("empty user id", func(t *testing.T) {
		f := newFakeParagon(t, status(201, ""))
		res := newTestClient(t, f.srv.URL, newFakeClock(t0), nil).Send(ctx, paragon.Event{Name: "Lead Created", Payload: []byte(`{}`)})
		if res.Outcome != paragon.Rejected || res.Err == nil || f.hits.Load() != 0 {
			t.Fatalf("result = %+v, hits %d", res, f.hits.Load())
		}
	})

	t.Run("error body excerpt capped and printable", func(t *testing.T) {
		big := "line one\nline two\r\n\x00\x1b[31m" + strings.Repeat("E", 10<<10)
		f := newFakeParagon(t, status(http.StatusBadRequest, big))
		res := newTestClient(t, f.srv.URL, newFakeClock(t0), nil).Send(ctx, ev)
		if res.Outcome != paragon.Rejected || res.Err == nil {
			t.Fatalf("result = %+v", res)
		}
		msg := res.Err.Error()
		prefix := "paragon answered 400 Bad Request: "
		if !strings.HasPrefix(msg, prefix) || len(msg) > len(prefix)+200 {
			t.Fatalf("Err is %d bytes (want at most %d): %.300q", len(msg), len(prefix)+200, msg)
		}
		if strings.ContainsAny(msg, "\n\r\x00\x1b") {
			t.Fatalf("Err has control characters: %q", msg)
		}
		if !strings.Contains(msg, "line one line two") {
			t.Fatalf("Err = %q", msg)
		}
	})

	t.Run("empty error body", func(t *testing.T) {
		f := newFakeParagon(t, status(http.StatusBadGateway, ""))
		res := newTestClient(t, f.srv.URL, newFakeClock(t0), nil).Send(ctx, ev)
		if res.Err == nil || res.Err.Error() != "paragon answered 502 Bad Gateway: (empty body)" {
			t.Fatalf("Err = %v", res.Err)
		}
	})

	t.Run("echoed Authorization header is cut before the signature", func(t *testing.T) {
		// A proxy that echoes the request headers must not get the token
		// into last_error: the excerpt stops well before the signature.
		f := newFakeParagon(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusBadGateway)
			io.WriteString(w, "bad upstream; request had Authorization: "+r.Header.Get("Authorization"))
		})
		res := newTestClient(t, f.srv.URL, newFakeClock(t0), nil).Send(ctx, ev)
		if res.Outcome != paragon.Retry {
			t.Fatalf("result = %+v", res)
		}
		assertNoSecrets(t, f, res)
	})

	t.Run("keep-alive", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			h    http.HandlerFunc
		}{
			{"201", status(http.StatusCreated, `{"ok":true}`)},
			{"500 with 10KB body", status(http.StatusInternalServerError, strings.Repeat("e", 10<<10))},
		} {
			t.Run(tc.name, func(t *testing.T) {
				f := newFakeParagon(t, tc.h)
				c := newTestClient(t, f.srv.URL, newFakeClock(t0), nil)
				const sends = 50
				for range sends {
					if res := c.Send(ctx, ev); res.Status == 0 {
						t.Fatalf("result = %+v", res)
					}
				}
				if f.hits.Load() != sends {
					t.Fatalf("hits = %d", f.hits.Load())
				}
				n := f.newConns.Load()
				if n > 5 {
					t.Fatalf("%d sequential sends opened %d connections; keep-alive is not working", sends, n)
				}
				t.Logf("%d sequential sends, %d connection(s)", sends, n)
			})
		}
	})

	t.Run("concurrent sends", func(t *testing.T) {
		f := newFakeParagon(t, status(201, ""))
		c := newTestClient(t, f.srv.URL, newFakeClock(t0), func(c *paragon.ClientConfig) { c.MaxConns = 4 })
		var wg sync.WaitGroup
		for i := range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res := c.Send(ctx, paragon.Event{Name: "Lead Created", UserID: fmt.Sprintf("u%d", i%5), Payload: []byte(`{"i":` + fmt.Sprint(i) + `}`)})
				if res.Outcome != paragon.Delivered {
					t.Errorf("send %d: %+v", i, res)
				}
			}()
		}
		wg.Wait()
		if f.hits.Load() != 32 {
			t.Fatalf("hits = %d", f.hits.Load())
		}
		if n := f.newConns.Load(); n > 4 {
			t.Fatalf("%d connections with MaxConns 4", n)
		}
	})

	t.Run("https", func(t *testing.T) {
		srv := httptest.NewTLSServer(status(201, ""))
		t.Cleanup(srv.Close)
		c := newTestClient(t, srv.URL, newFakeClock(t0), func(c *paragon.ClientConfig) { c.Transport = srv.Client().Transport })
		if res := c.Send(ctx, ev); res.Outcome != paragon.Delivered {
			t.Fatalf("result = %+v", res)
		}
	})

	t.Run("https with untrusted certificate", func(t *testing.T) {
		// The default transport verifies TLS: a self-signed server is refused.
		srv := httptest.NewUnstartedServer(status(201, ""))
		srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake error is expected
		srv.StartTLS()
		t.Cleanup(srv.Close)
		res := newTestClient(t, srv.URL, newFakeClock(t0), nil).Send(ctx, ev)
		if res.Outcome != paragon.Retry || res.Status != 0 || !strings.Contains(res.Err.Error(), "certificate") {
			t.Fatalf("result = %+v", res)
		}
	})
}

func TestNewClient(t *testing.T) {
	tk := newTokens(t, newFakeClock(t0), nil)
	for _, tc := range []struct {
		name, base, project string
		tokens              *paragon.Tokens
		wantErr             string
		wantEndpoint        string
	}{
		{name: "default base", base: "", project: "p1", tokens: tk, wantEndpoint: "https://api.useparagon.com/projects/p1/sdk/events/trigger"},
		{name: "self-hosted, trailing slash", base: "https://zeus.example.com/", project: "p1", tokens: tk, wantEndpoint: "https://zeus.example.com/projects/p1/sdk/events/trigger"},
		{name: "http with port", base: "http://127.0.0.1:8080", project: "abc-123", tokens: tk, wantEndpoint: "http://127.0.0.1:8080/projects/abc-123/sdk/events/trigger"},
		{name: "ftp", base: "ftp://x", project: "p1", tokens: tk, wantErr: "base URL"},
		{name: "not a url", base: "not a url", project: "p1", tokens: tk, wantErr: "base URL"},
		{name: "no host", base: "https://", project: "p1", tokens: tk, wantErr: "base URL"},
		{name: "bad escape", base: "https://x/%zz", project: "p1", tokens: tk, wantErr: "base URL"},
		{name: "query in base", base: "https://zeus.example.com?x=1", project: "p1", tokens: tk, wantErr: "base URL"},
		{name: "fragment in base", base: "https://zeus.example.com#x", project: "p1", tokens: tk, wantErr: "base URL"},
		{name: "project with slash", base: "", project: "a/b", tokens: tk, wantErr: "project id"},
		{name: "project with ?", base: "", project: "a?b", tokens: tk, wantErr: "project id"},
		{name: "project with space", base: "", project: "a b", tokens: tk, wantErr: "project id"},
		{name: "empty project", base: "", project: "", tokens: tk, wantErr: "project id"},
		{name: "no tokens", base: "", project: "p1", tokens: nil, wantErr: "Tokens"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := paragon.NewClient(paragon.ClientConfig{BaseURL: tc.base, ProjectID: tc.project, Tokens: tc.tokens})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
				}
				if c != nil {
					t.Fatal("non-nil client with an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Endpoint() != tc.wantEndpoint {
				t.Fatalf("Endpoint = %q, want %q", c.Endpoint(), tc.wantEndpoint)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		status   int
		outcome  paragon.Outcome
		systemic bool
	}{
		{200, paragon.Delivered, false},
		{201, paragon.Delivered, false},
		{202, paragon.Delivered, false},
		{204, paragon.Delivered, false},
		{299, paragon.Delivered, false},
		{100, paragon.Retry, true},
		{301, paragon.Retry, true},
		{302, paragon.Retry, true},
		{304, paragon.Retry, true},
		{307, paragon.Retry, true},
		{308, paragon.Retry, true},
		{400, paragon.Rejected, false},
		{401, paragon.Retry, true},
		{402, paragon.Rejected, false},
		{403, paragon.Retry, true},
		{404, paragon.Retry, true},
		{405, paragon.Rejected, false},
		{408, paragon.Retry, true},
		{409, paragon.Rejected, false},
		{410, paragon.Rejected, false},
		{413, paragon.Rejected, false},
		{415, paragon.Rejected, false},
		{422, paragon.Rejected, false},
		{425, paragon.Retry, true},
		{429, paragon.Retry, true},
		{499, paragon.Rejected, false},
		{500, paragon.Retry, true},
		{501, paragon.Retry, true},
		{502, paragon.Retry, true},
		{503, paragon.Retry, true},
		{504, paragon.Retry, true},
		{599, paragon.Retry, true},
		{0, paragon.Retry, true},
		{-1, paragon.Retry, true},
		{999, paragon.Retry, true},
	} {
		o, sys := paragon.Classify(tc.status)
		if o != tc.outcome || sys != tc.systemic {
			t.Errorf("Classify(%d) = %s, %v; want %s, %v", tc.status, o, sys, tc.outcome, tc.systemic)
		}
	}
}

func TestOutcomeString(t *testing.T) {
	for o, want := range map[paragon.Outcome]string{paragon.Delivered: "delivered", paragon.Retry: "retry", paragon.Rejected: "rejected", 0: "unknown", 99: "unknown"} {
		if o.String() != want {
			t.Errorf("Outcome(%d).String() = %q, want %q", int(o), o.String(), want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	date := func(d time.Duration) string { return now.Add(d).Format(http.TimeFormat) }
	const maxDelay = time.Hour
	for _, tc := range []struct {
		v    string
		max  time.Duration
		want time.Duration
	}{
		{"", maxDelay, 0},
		{"   ", maxDelay, 0},
		{"0", maxDelay, 0},
		{"-1", maxDelay, 0},
		{"-99999999999999999999", maxDelay, 0},
		{"abc", maxDelay, 0},
		{"1.5", maxDelay, 0},
		{"7", maxDelay, 7 * time.Second},
		{" 120 ", maxDelay, 120 * time.Second},
		{"120", maxDelay, 2 * time.Minute},
		{"3600", maxDelay, time.Hour},
		{"3601", maxDelay, time.Hour},
		{"86400", maxDelay, time.Hour},
		{"9223372036854775807", maxDelay, time.Hour},  // MaxInt64 seconds: no overflow
		{"99999999999999999999", maxDelay, time.Hour}, // beyond int64: still "very long"
		{"9223372036854775807", 500 * time.Millisecond, 500 * time.Millisecond},
		{"30", 10 * time.Second, 10 * time.Second},
		{date(90 * time.Second), maxDelay, 90 * time.Second},
		{date(2 * time.Hour), maxDelay, time.Hour},
		{date(-90 * time.Second), maxDelay, 0},
		{date(0), maxDelay, 0},
		{now.Add(45 * time.Second).Format("Monday, 02-Jan-06 15:04:05 GMT"), maxDelay, 45 * time.Second}, // obsolete forms RFC 9110 still allows
		{now.Add(45 * time.Second).Format(time.ANSIC), maxDelay, 45 * time.Second},
		{"Sat, 01 Mar 2025 12:00:30 XYZ", maxDelay, 0},
	} {
		if got := paragon.ParseRetryAfter(tc.v, now, tc.max); got != tc.want {
			t.Errorf("ParseRetryAfter(%q, max %s) = %s, want %s", tc.v, tc.max, got, tc.want)
		}
	}
}

func BenchmarkAppendBody(b *testing.B) {
	payload := []byte(trickyPayload)
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		buf = paragon.AppendBody(buf[:0], "Lead Created", payload)
	}
	if !json.Valid(buf) {
		b.Fatal("invalid body")
	}
}

func TestAppendBody(t *testing.T) {
	got := paragon.AppendBody([]byte("prefix:"), "Lead \"Created\" <b>", []byte(`{"a":1}`))
	var v struct {
		Name    string
		Payload map[string]int
	}
	if err := json.Unmarshal(got[len("prefix:"):], &v); err != nil {
		t.Fatalf("%s: %v", got, err)
	}
	if !bytes.HasPrefix(got, []byte("prefix:")) || v.Name != "Lead \"Created\" <b>" || v.Payload["a"] != 1 {
		t.Fatalf("AppendBody = %s", got)
	}
}
