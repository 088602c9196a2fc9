// Package paragonlocal is a local imitation of Paragon's App Event endpoint,
// POST /projects/{projectId}/sdk/events/trigger, for tests, demos and benchmarks.
//
// What it owns: an http.Handler ([Server]) that accepts App Events the way
// docs/PARAGON.md describes Paragon doing it: a JSON body
// {"name": string, "payload": object}, a Paragon User Token (a JWT signed RS256
// with the project's Signing Key, with sub, iat, exp and
// aud "useparagon.com/{projectId}" as in Paragon's setup guide) in
// "Authorization: Bearer", and 201 on success. It records every accepted event in
// memory (raw payload bytes, never re-encoded), counts duplicates by payload
// eventId, and can inject faults (500, 429 with Retry-After, slow answers,
// dropped connections, fixed latency, permanent per-event rejections) so a
// relay's retry behaviour can be seen and tested. [Start] and [ListenAndServe]
// run it as a standalone HTTP server.
//
// What it does not own: it is never used for production sends, it does not run
// workflows, and it implements only the trigger endpoint (not /sdk/me or the
// Task History API). Where Paragon's behaviour is undocumented (response body,
// payload size limit, status for a malformed body) it picks a plausible,
// documented answer: body "{}" on 201, a 1 MiB default limit answered 413, 400
// for a malformed body, all error bodies {"error": "<which check failed>"}.
package paragonlocal

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/paragon-outbox/outbox-relay/internal/backoff"
)

const (
	// DefaultMaxBody is the default request body limit in bytes (1 MiB).
	// Paragon documents no payload size limit; larger bodies are answered 413.
	DefaultMaxBody int64 = 1 << 20

	// IATLeeway is how far in the future a token's iat may lie and still be
	// accepted (5 s), to allow for clock skew between relay and server. The
	// same leeway applies to nbf when present. exp gets no leeway.
	IATLeeway = 5 * time.Second

	// TokenCacheSize is the number of verified tokens kept in the verification
	// cache (10,000). When the cache is full it is emptied before the next insert.
	TokenCacheSize = 10000

	// AudiencePrefix is the aud prefix Paragon's setup guide uses: a token for
	// project P carries aud "useparagon.com/P".
	AudiencePrefix = "useparagon.com/"
)

// Config configures a [Server]. ProjectID and PublicKey are required; every
// other field has a usable zero value.
type Config struct {
	// ProjectID is the Paragon project id this server answers for. Requests
	// for any other {projectId} in the path get 404, and tokens must carry
	// aud "useparagon.com/" + ProjectID. Required; must not contain '/'.
	ProjectID string

	// PublicKey verifies the RS256 signature of Paragon User Tokens: the public
	// half of the project's Signing Key. Required.
	PublicKey *rsa.PublicKey

	// MaxBody is the request body limit in bytes; larger bodies get 413.
	// 0 means DefaultMaxBody (1 MiB). Negative is an error.
	MaxBody int64

	// Faults is the initial fault injection; see [Faults] and [Server.SetFaults].
	Faults Faults

	// DiscardPayloads, when true, keeps no payload bytes in [Received] records
	// (Payload is nil) to save memory in benchmarks. EventID, Name, Sub and At
	// are still recorded and [Server.CountByEventID] still works. Default false:
	// payloads are kept. Either way every accepted event stays in memory until
	// [Server.Reset]: about 100 bytes plus its eventId (twice: record and
	// count map), plus the payload unless discarded.
	DiscardPayloads bool

	// Now returns the current time; used for token time checks and
	// Received.At. Default time.Now. Tests set it to move the clock.
	Now func() time.Time

	// Recorder, when non-nil, receives one JSON line per accepted event:
	// {"at": RFC 3339 time, "eventId": string (omitted if none), "name": string,
	// "sub": string, "payload": object}. The payload is written compacted
	// (whitespace between tokens removed, numbers and strings untouched) so each
	// event stays on one line. Lines are written one Write call each, serialised,
	// in approximately arrival order. Write errors are counted in
	// Stats.RecorderErrors and otherwise ignored.
	Recorder io.Writer
}

// Received is one App Event the server accepted (answered 201).
type Received struct {
	// EventID is payload.eventId when it is a JSON string, else "".
	EventID string
	// Name is the App Event name, e.g. "Lead Created".
	Name string
	// Sub is the token's sub claim: the Connected User the event was sent for.
	Sub string
	// Payload is the payload object's bytes exactly as received (no
	// re-encoding, so integers beyond 2^53 survive). nil when
	// Config.DiscardPayloads is set. Shared between copies: do not modify.
	Payload json.RawMessage
	// At is when the event was accepted, from Config.Now.
	At time.Time
}

// Stats are the server's counters since construction or the last
// [Server.Reset]. Each field is read atomically; the set is not one snapshot.
type Stats struct {
	// Accepted counts events answered 201 and recorded.
	Accepted int64
	// Rejected401 counts 401 answers (authentication failures), including a
	// RejectFunc returning 401.
	Rejected401 int64
	// Rejected4xx counts every other 4xx answer: 400, 404, 405, 413, 415 and
	// RejectFunc statuses in 400–499 other than 401.
	Rejected4xx int64
	// Rejected5xx counts RejectFunc statuses in 500–599 (and invalid
	// RejectFunc statuses, answered 500). Injected faults are counted below.
	Rejected5xx int64
	// Injected500 counts requests answered 500 by fault injection.
	Injected500 int64
	// Injected429 counts requests answered 429 by fault injection.
	Injected429 int64
	// InjectedSlow counts requests delayed by Faults.SlowDelay.
	InjectedSlow int64
	// InjectedDrop counts connections closed without a response.
	InjectedDrop int64
	// Canceled counts requests whose context ended during Latency or
	// SlowDelay; they are answered 503 (if anyone is still listening) and not
	// recorded.
	Canceled int64
	// TokenVerifications counts full RS256 verifications (cache misses).
	TokenVerifications int64
	// TokenCacheHits counts requests authenticated from the token cache.
	TokenCacheHits int64
	// RecorderErrors counts failed writes to Config.Recorder.
	RecorderErrors int64
}

// Server imitates Paragon's App Event endpoint. It is an http.Handler; create
// it with [New]. All methods are safe for concurrent use.
type Server struct {
	projectID string
	wantAud   string
	maxBody   int64
	discard   bool
	now       func() time.Time
	parser    *jwt.Parser
	keyFunc   jwt.Keyfunc
	mux       *http.ServeMux

	faults atomic.Pointer[faultState]
	reject atomic.Pointer[rejectHolder]

	cacheMu sync.RWMutex
	cache   map[string]tokenInfo

	mu      sync.Mutex // guards recs, byID, waiters
	recs    []Received
	byID    map[string]int
	waiters []*waiter

	lastName atomic.Pointer[string] // interned event name

	encMu sync.Mutex
	enc   *json.Encoder // nil without Config.Recorder

	st struct {
		accepted, rej401, rej4xx, rej5xx           atomic.Int64
		inj500, inj429, injSlow, injDrop, canceled atomic.Int64
		verifications, cacheHits, recorderErrs     atomic.Int64
	}
}

type rejectHolder struct {
	fn func(name, sub string, payload json.RawMessage) (status int, reason string)
}

// rejectedDefault is the error text of a rejection whose function gave no
// reason (SetRejectFunc).
const rejectedDefault = "rejected by this local endpoint's reject rule"

type waiter struct {
	n  int
	ch chan struct{}
}

// New returns a Server for cfg. It fails, naming the field, when
// Config.ProjectID is empty or contains '/', when Config.PublicKey is nil or
// has no modulus, or when Config.MaxBody is negative. Fault shares outside
// 0..1 are clamped as in [Server.SetFaults].
func New(cfg Config) (*Server, error) {
	if cfg.ProjectID == "" {
		return nil, errors.New("paragonlocal: Config.ProjectID is required")
	}
	if strings.Contains(cfg.ProjectID, "/") {
		return nil, errors.New("paragonlocal: Config.ProjectID must not contain '/'")
	}
	if cfg.PublicKey == nil || cfg.PublicKey.N == nil {
		return nil, errors.New("paragonlocal: Config.PublicKey is required")
	}
	if cfg.MaxBody < 0 {
		return nil, errors.New("paragonlocal: Config.MaxBody must not be negative")
	}
	s := &Server{
		projectID: cfg.ProjectID,
		wantAud:   AudiencePrefix + cfg.ProjectID,
		maxBody:   cfg.MaxBody,
		discard:   cfg.DiscardPayloads,
		now:       cfg.Now,
		cache:     make(map[string]tokenInfo),
		byID:      make(map[string]int),
	}
	if s.maxBody == 0 {
		s.maxBody = DefaultMaxBody
	}
	if s.now == nil {
		s.now = time.Now
	}
	pub := cfg.PublicKey
	s.keyFunc = func(*jwt.Token) (any, error) { return pub, nil }
	// Claims are checked by checkClaims so that cached tokens get the same
	// checks and a 401 can say which check failed.
	s.parser = jwt.NewParser(jwt.WithValidMethods([]string{"RS256"}), jwt.WithoutClaimsValidation())
	if cfg.Recorder != nil {
		s.enc = json.NewEncoder(cfg.Recorder)
		s.enc.SetEscapeHTML(false)
	}
	s.SetFaults(cfg.Faults)
	s.mux = s.routes()
	return s, nil
}

// SetRejectFunc installs fn, called for each authenticated, well-formed event
// that fault injection let through. When fn returns a non-zero status the event
// is answered with that status and an {"error": ...} body and is not recorded,
// so tests can make chosen events fail (e.g. 400, 422; a 429 or 503 carries the Faults.RetryAfter header). fn must
// return 0 or a status in 400–599; any other value is answered 500. fn may be
// called concurrently. payload is a per-request copy of the raw bytes, which is
// also what gets recorded: fn may keep it but must not modify it. nil removes
// the function.
// The answer's error says only "rejected by this local endpoint's reject
// rule"; SetRejectReasonFunc says why.
func (s *Server) SetRejectFunc(fn func(name, sub string, payload json.RawMessage) int) {
	if fn == nil {
		s.reject.Store(nil)
		return
	}
	s.reject.Store(&rejectHolder{fn: func(name, sub string, payload json.RawMessage) (int, string) { return fn(name, sub, payload), "" }})
}

// SetRejectReasonFunc is SetRejectFunc whose fn also says why it rejects:
// a non-empty reason becomes the answer's error, prefixed with "rejected: "
// (e.g. `rejected: payload matches -reject-match "REJECTME"`), which a
// relay records in last_error. nil removes the function.
func (s *Server) SetRejectReasonFunc(fn func(name, sub string, payload json.RawMessage) (status int, reason string)) {
	if fn == nil {
		s.reject.Store(nil)
		return
	}
	s.reject.Store(&rejectHolder{fn: fn})
}

// ServeHTTP answers like Paragon's POST /projects/{projectId}/sdk/events/trigger.
//
// Checks, in order, each failure answered with {"error": "<which check>"}:
//  1. Routing, by an http.ServeMux with the patterns
//     "POST /projects/{projectId}/sdk/events/trigger" and
//     "GET /projects/{projectId}/sdk/me" (see serveMe): any other path, or
//     one that is not clean (no redirect), → 404; that path with another
//     method → 405 (Allow: POST); {projectId} not Config.ProjectID → 404.
//     These answers are immediate.
//  2. Body over Config.MaxBody → 413 (the body is read before step 3).
//  3. Faults.Latency is waited out.
//  4. Authorization: Bearer token missing or failing any check → 401 with
//     WWW-Authenticate: Bearer. Checks: RS256 only, signature by
//     Config.PublicKey, sub non-empty, exp present and not reached, iat
//     present and at most IATLeeway ahead, nbf (if any) at most IATLeeway
//     ahead, aud containing "useparagon.com/{projectId}". The body names the
//     failed check and never echoes the token. Successful verifications are
//     cached per token string until full (TokenCacheSize); a cached token goes
//     through the sub/exp/iat/nbf/aud checks again on every use.
//  5. Content-Type not application/json (parameters allowed) → 415.
//  6. Body not valid JSON or not an object; name missing, not a string or
//     empty; payload missing or not an object → 400. Keys match exactly
//     (case-sensitive); a repeated key's last value counts.
//  7. Fault injection (see [Faults]), then the RejectFunc.
//  8. Recorded, then 201 with body "{}" (docs/PARAGON.md: Paragon answers 201 on
//     success; its body is undocumented).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if path.Clean(r.URL.Path) != r.URL.Path {
		// ServeMux would redirect to the clean path; Paragon has no such paths.
		s.reject4xx(w, http.StatusNotFound, "not found")
		return
	}
	s.mux.ServeHTTP(w, r)
}

// routes returns the ServeMux that ServeHTTP dispatches to.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /projects/{projectId}/sdk/events/trigger", s.serveTrigger)
	mux.HandleFunc("/projects/{projectId}/sdk/events/trigger", func(w http.ResponseWriter, _ *http.Request) {
		w.Header()["Allow"] = allowPost
		s.reject4xx(w, http.StatusMethodNotAllowed, "method not allowed: use POST")
	})
	mux.HandleFunc("GET /projects/{projectId}/sdk/me", s.serveMe)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		s.reject4xx(w, http.StatusNotFound, "not found")
	})
	return mux
}

func (s *Server) serveTrigger(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("projectId") != s.projectID {
		s.reject4xx(w, http.StatusNotFound, "unknown project")
		return
	}
	if r.ContentLength > s.maxBody {
		s.reject4xx(w, http.StatusRequestEntityTooLarge, "body too large")
		return
	}
	// The body is read before any wait: only once it is consumed does
	// net/http notice a client hang-up and cancel r.Context().
	bp := bufPool.Get().(*[]byte)
	defer putBuf(bp)
	body, tooBig, err := readBody(r.Body, (*bp)[:0], s.maxBody)
	*bp = body
	if tooBig {
		s.reject4xx(w, http.StatusRequestEntityTooLarge, "body too large")
		return
	}
	if err != nil {
		s.reject4xx(w, http.StatusBadRequest, "could not read body")
		return
	}

	f := s.faults.Load()
	if f.Latency > 0 && !backoff.Sleep(r.Context(), f.Latency) {
		s.canceled(w)
		return
	}
	sub, reason := s.authenticate(r.Header.Get("Authorization"))
	if reason != "" {
		s.st.rej401.Add(1)
		w.Header()["Www-Authenticate"] = wwwAuthenticate
		writeError(w, http.StatusUnauthorized, reason)
		return
	}
	if !isJSONContentType(r.Header.Get("Content-Type")) {
		s.reject4xx(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return
	}
	if !json.Valid(body) {
		s.reject4xx(w, http.StatusBadRequest, "body is not valid JSON")
		return
	}
	if bytes.TrimLeft(body, " \t\r\n")[0] != '{' {
		s.reject4xx(w, http.StatusBadRequest, "body must be a JSON object")
		return
	}
	nameRaw, payloadRaw := members(body, "name", "payload")
	switch {
	case nameRaw == nil:
		s.reject4xx(w, http.StatusBadRequest, "name is required")
		return
	case nameRaw[0] != '"':
		s.reject4xx(w, http.StatusBadRequest, "name must be a string")
		return
	case payloadRaw == nil:
		s.reject4xx(w, http.StatusBadRequest, "payload is required")
		return
	case payloadRaw[0] != '{':
		s.reject4xx(w, http.StatusBadRequest, "payload must be a JSON object")
		return
	}
	name := s.internName(nameRaw)
	if name == "" {
		s.reject4xx(w, http.StatusBadRequest, "name must not be empty")
		return
	}

	if f.active {
		x := rand.Float64()
		switch {
		case x < f.cDrop:
			s.st.injDrop.Add(1)
			dropConnection(w)
			return
		case x < f.c500:
			s.st.inj500.Add(1)
			writeError(w, http.StatusInternalServerError, "internal server error (injected)")
			return
		case x < f.c429:
			s.st.inj429.Add(1)
			w.Header()["Retry-After"] = f.retryAfter
			writeError(w, http.StatusTooManyRequests, "too many requests (injected)")
			return
		case x < f.cSlow:
			s.st.injSlow.Add(1)
			if !backoff.Sleep(r.Context(), f.SlowDelay) {
				s.canceled(w)
				return
			}
		}
	}

	eventID := eventIDOf(payloadRaw)
	var payload json.RawMessage
	rh := s.reject.Load()
	if !s.discard || rh != nil {
		payload = payloadRaw // a copy of the request's bytes, made by json.Unmarshal
	}
	if rh != nil {
		if code, reason := rh.fn(name, sub, payload); code != 0 {
			if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
				// Like injected 429s, carry the configured Retry-After.
				w.Header()["Retry-After"] = s.faults.Load().retryAfter
			}
			s.rejectedByFunc(w, code, reason)
			return
		}
	}
	if s.discard {
		payload = nil
	}
	at := s.now()
	s.record(Received{EventID: eventID, Name: name, Sub: sub, Payload: payload, At: at})
	if s.enc != nil {
		s.writeLine(recordLine{At: at, EventID: eventID, Name: name, Sub: sub, Payload: payloadRaw})
	}
	w.Header()["Content-Type"] = contentTypeJSON
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(emptyObject)
}

// record appends rec and wakes satisfied WaitForCount callers.
func (s *Server) record(rec Received) {
	s.mu.Lock()
	s.recs = append(s.recs, rec)
	if rec.EventID != "" {
		s.byID[rec.EventID]++
	}
	if len(s.waiters) > 0 {
		n := len(s.recs)
		kept := s.waiters[:0]
		for _, w := range s.waiters {
			if n >= w.n {
				close(w.ch)
			} else {
				kept = append(kept, w)
			}
		}
		clear(s.waiters[len(kept):])
		s.waiters = kept
	}
	s.mu.Unlock()
	s.st.accepted.Add(1)
}

type recordLine struct {
	At      time.Time       `json:"at"`
	EventID string          `json:"eventId,omitempty"`
	Name    string          `json:"name"`
	Sub     string          `json:"sub"`
	Payload json.RawMessage `json:"payload"`
}

func (s *Server) writeLine(l recordLine) {
	s.encMu.Lock()
	err := s.enc.Encode(l)
	s.encMu.Unlock()
	if err != nil {
		s.st.recorderErrs.Add(1)
	}
}

// internName returns the decoded event name, reusing the previous name's
// string when it is the same (event names repeat, so this saves an allocation
// and retained memory per event).
func (s *Server) internName(raw []byte) string {
	// An unescaped literal equal to the last name: compare without decoding
	// (string(raw[…]) == … does not allocate).
	if p := s.lastName.Load(); p != nil && len(raw) == len(*p)+2 &&
		bytes.IndexByte(raw, '\\') < 0 && string(raw[1:len(raw)-1]) == *p {
		return *p
	}
	var name string
	_ = json.Unmarshal(raw, &name) // raw is a valid JSON string: cannot fail
	s.lastName.Store(&name)
	return name
}

// eventIDOf returns payload.eventId when it is a JSON string, else "".
// Unlike name and payload, it is matched the way encoding/json matches a
// struct field (a case-insensitive match counts, the last one wins): it only
// labels the record, and a struct skips the other members without
// allocating, where a map would copy each of them.
func eventIDOf(payload []byte) string {
	var p struct {
		EventID json.RawMessage `json:"eventId"`
	}
	if json.Unmarshal(payload, &p) != nil || len(p.EventID) == 0 || p.EventID[0] != '"' {
		return ""
	}
	if bytes.IndexByte(p.EventID, '\\') < 0 {
		return string(p.EventID[1 : len(p.EventID)-1]) // nothing to unescape
	}
	var id string
	_ = json.Unmarshal(p.EventID, &id) // a valid JSON string: cannot fail
	return id
}

// members returns the raw values of the top-level keys k1 and k2 of the JSON
// object obj (nil when absent), each a copy of its bytes as received. Keys
// match exactly (case-sensitively, as JSON.parse does on Paragon's side:
// decoding into a map, unlike into a struct, never folds case) and a repeated
// key's last value counts. obj must be valid JSON; anything but an object
// gives nil, nil.
func members(obj []byte, k1, k2 string) (v1, v2 json.RawMessage) {
	var m map[string]json.RawMessage
	if json.Unmarshal(obj, &m) != nil {
		return nil, nil
	}
	return m[k1], m[k2]
}

func (s *Server) rejectedByFunc(w http.ResponseWriter, code int, reason string) {
	msg := rejectedDefault
	if reason != "" {
		msg = "rejected: " + reason
	}
	switch {
	case code == http.StatusUnauthorized:
		s.st.rej401.Add(1)
		writeError(w, code, msg)
	case code >= 400 && code <= 499:
		s.st.rej4xx.Add(1)
		writeError(w, code, msg)
	case code >= 500 && code <= 599:
		s.st.rej5xx.Add(1)
		writeError(w, code, msg)
	default:
		s.st.rej5xx.Add(1)
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("the reject rule gave status %d, outside 400-599", code))
	}
}

func (s *Server) reject4xx(w http.ResponseWriter, code int, msg string) {
	s.st.rej4xx.Add(1)
	writeError(w, code, msg)
}

func (s *Server) canceled(w http.ResponseWriter) {
	s.st.canceled.Add(1)
	writeError(w, http.StatusServiceUnavailable, "request canceled")
}

// Received returns a copy of all accepted events in arrival order. The
// Payload bytes are shared with the server's copy and must not be modified.
func (s *Server) Received() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.recs...)
}

// Count returns the number of accepted events since construction or Reset.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recs)
}

// CountByEventID returns a new map from payload eventId to the number of times
// an event with that id was accepted; a value above 1 is a duplicate delivery.
// Events without a string eventId are not in the map.
func (s *Server) CountByEventID() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]int, len(s.byID))
	for k, v := range s.byID {
		m[k] = v
	}
	return m
}

// Stats returns the current counters.
func (s *Server) Stats() Stats {
	return Stats{
		Accepted:           s.st.accepted.Load(),
		Rejected401:        s.st.rej401.Load(),
		Rejected4xx:        s.st.rej4xx.Load(),
		Rejected5xx:        s.st.rej5xx.Load(),
		Injected500:        s.st.inj500.Load(),
		Injected429:        s.st.inj429.Load(),
		InjectedSlow:       s.st.injSlow.Load(),
		InjectedDrop:       s.st.injDrop.Load(),
		Canceled:           s.st.canceled.Load(),
		TokenVerifications: s.st.verifications.Load(),
		TokenCacheHits:     s.st.cacheHits.Load(),
		RecorderErrors:     s.st.recorderErrs.Load(),
	}
}

// Reset forgets all received events and zeroes every counter. Faults, the
// RejectFunc and the token cache (which holds no received data) are kept, and
// pending WaitForCount calls keep waiting for their count from zero.
func (s *Server) Reset() {
	s.mu.Lock()
	s.recs = nil
	s.byID = make(map[string]int)
	s.mu.Unlock()
	for _, c := range []*atomic.Int64{
		&s.st.accepted, &s.st.rej401, &s.st.rej4xx, &s.st.rej5xx,
		&s.st.inj500, &s.st.inj429, &s.st.injSlow, &s.st.injDrop, &s.st.canceled,
		&s.st.verifications, &s.st.cacheHits, &s.st.recorderErrs,
	} {
		c.Store(0)
	}
}

// WaitForCount blocks until Count() >= n, returning nil, or until ctx is done,
// returning ctx.Err(). It does not poll: each accepted event wakes the waiters
// whose count it reaches. n <= 0 returns nil at once.
func (s *Server) WaitForCount(ctx context.Context, n int) error {
	s.mu.Lock()
	if len(s.recs) >= n {
		s.mu.Unlock()
		return nil
	}
	w := &waiter{n: n, ch: make(chan struct{})}
	s.waiters = append(s.waiters, w)
	s.mu.Unlock()

	select {
	case <-w.ch:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, x := range s.waiters {
		if x == w {
			last := len(s.waiters) - 1
			copy(s.waiters[i:], s.waiters[i+1:])
			s.waiters[last] = nil
			s.waiters = s.waiters[:last]
			return ctx.Err()
		}
	}
	return nil // woken while ctx ended: the count was reached
}

// serveMe imitates GET /projects/{projectId}/sdk/me (docs/PARAGON.md: the
// Connected User's integrations, user-token auth): 404 for another project,
// 401 for a token Paragon would refuse, else 200 with an empty
// integrations object. `outbox-relay doctor` uses it to check the signing
// key and project id without sending an event.
func (s *Server) serveMe(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("projectId") != s.projectID {
		s.reject4xx(w, http.StatusNotFound, "unknown project")
		return
	}
	if _, reason := s.authenticate(r.Header.Get("Authorization")); reason != "" {
		s.st.rej401.Add(1)
		w.Header()["Www-Authenticate"] = wwwAuthenticate
		writeError(w, http.StatusUnauthorized, reason)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"integrations":{}}`))
}

// isJSONContentType accepts "application/json" with optional parameters such
// as "; charset=utf-8", case-insensitively, without allocating.
func isJSONContentType(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "application/json")
}

var (
	contentTypeJSON = []string{"application/json"}
	allowPost       = []string{"POST"}
	wwwAuthenticate = []string{`Bearer error="invalid_token"`}
	emptyObject     = []byte("{}")
)

// writeError writes {"error": msg} with the given status.
func writeError(w http.ResponseWriter, code int, msg string) {
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	w.Header()["Content-Type"] = contentTypeJSON
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

// dropConnection closes the client connection without writing a response.
func dropConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		_ = conn.Close()
		return
	}
	// Not hijackable (e.g. HTTP/2): abort the response; net/http resets the
	// stream or closes the connection without logging.
	panic(http.ErrAbortHandler)
}

const maxPooledBuf = 64 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func putBuf(bp *[]byte) {
	if cap(*bp) > maxPooledBuf {
		return
	}
	*bp = (*bp)[:0]
	bufPool.Put(bp)
}

// readBody appends r's content to b. tooBig is true as soon as more than limit
// bytes have been read.
func readBody(r io.Reader, b []byte, limit int64) (out []byte, tooBig bool, err error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if int64(len(b)) > limit {
			return b, true, nil
		}
		if err == io.EOF {
			return b, false, nil
		}
		if err != nil {
			return b, false, err
		}
	}
}
