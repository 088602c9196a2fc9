package paragon

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultBaseURL is Paragon's cloud API (docs/PARAGON.md).
const DefaultBaseURL = "https://api.useparagon.com"

// Client defaults, used for zero ClientConfig fields (package config's
// RELAY_SEND_TIMEOUT, RELAY_CONCURRENCY, RELAY_MAX_PAYLOAD_BYTES and
// RELAY_MAX_RETRY_AFTER default to these).
const (
	DefaultTimeout         = 10 * time.Second // one HTTP exchange
	DefaultMaxConns        = 64               // keep-alive connections
	DefaultMaxPayloadBytes = 1 << 20          // larger payloads are refused unsent
	DefaultMaxRetryAfter   = time.Hour        // cap on a Retry-After
)

// Outcome says what the relay must do with an event after one attempt.
type Outcome int

const (
	// Delivered means Paragon answered 2xx (it answers 201 on success).
	Delivered Outcome = iota + 1
	// Retry means the event may succeed later (429, 5xx, 408, timeouts, network
	// errors, and responses that mean our configuration is wrong right now
	// such as 401/403/404: a rotated signing key or wrong project id must not
	// kill events). Spends an attempt.
	Retry
	// Rejected means Paragon refused this event for its content (other 4xx),
	// or the relay refused to send it (Result.NotSent: a payload over the size
	// limit). Retrying cannot help: the event goes dead.
	Rejected
)

func (o Outcome) String() string {
	switch o {
	case Delivered:
		return "delivered"
	case Retry:
		return "retry"
	case Rejected:
		return "rejected"
	}
	return "unknown"
}

// Result is the outcome of one send.
type Result struct {
	Outcome Outcome
	// Status is the HTTP status, or 0 when no response arrived.
	Status int
	// RetryAfter is the server's Retry-After (either form), 0 when absent.
	RetryAfter time.Duration
	// Err describes the failure (nil when delivered). It never contains the
	// token or the payload; it may contain up to 200 bytes of Paragon's answer.
	Err error
	// Systemic is true for failures that hit every event alike (auth, wrong
	// project, network, 5xx, 429) rather than this event's content; a circuit
	// breaker counts these.
	Systemic bool
	// NotSent is true when the relay refused the event itself and sent no
	// request (payload over the size limit or not a JSON object, no Paragon
	// User Token could be signed). Outcome is then Rejected and Status 0.
	NotSent bool
	// Started and Finished bracket the attempt (relay clock, for the
	// attempt record's duration).
	Started, Finished time.Time
}

// ClientConfig configures NewClient. Zero values take the defaults.
type ClientConfig struct {
	BaseURL   string        // default DefaultBaseURL; http(s) URL without a trailing path
	ProjectID string        // required
	Tokens    *Tokens       // required
	Timeout   time.Duration // per request, whole exchange; default 10s
	// MaxConns bounds connections to Paragon (and idle keep-alive ones);
	// default 64. Set it to the relay's send concurrency.
	MaxConns int
	// MaxPayloadBytes: larger payloads are Rejected without a request;
	// default 1 MiB. Paragon documents no limit (docs/PARAGON.md).
	MaxPayloadBytes int
	// MaxRetryAfter clamps a server's Retry-After; default 1h.
	MaxRetryAfter time.Duration
	// Transport overrides the HTTP transport (tests); default a tuned
	// keep-alive transport that verifies TLS and tries HTTP/2.
	Transport http.RoundTripper
	Now       func() time.Time
}

// Client sends App Events to Paragon. Safe for concurrent use.
type Client struct {
	endpoint      string
	tokens        *Tokens
	http          *http.Client
	timeout       time.Duration
	maxPayload    int
	maxRetryAfter time.Duration
	now           func() time.Time
}

// NewClient validates c and returns a client. Errors name the bad setting.
func NewClient(c ClientConfig) (*Client, error) {
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("paragon: base URL %q is not an http(s) URL", c.BaseURL)
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		// The endpoint path is appended to the base: a query or fragment
		// would swallow it.
		return nil, fmt.Errorf("paragon: base URL %q must not have a query or fragment", c.BaseURL)
	}
	if c.ProjectID == "" || strings.ContainsAny(c.ProjectID, "/?# ") {
		return nil, fmt.Errorf("paragon: project id %q is empty or not a path segment", c.ProjectID)
	}
	if c.Tokens == nil {
		return nil, errors.New("paragon: client needs Tokens")
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.MaxPayloadBytes == 0 {
		c.MaxPayloadBytes = DefaultMaxPayloadBytes
	}
	if c.MaxRetryAfter == 0 {
		c.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	rt := c.Transport
	if rt == nil {
		rt = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          c.MaxConns,
			MaxIdleConnsPerHost:   c.MaxConns,
			MaxConnsPerHost:       c.MaxConns,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   5 * time.Second,
			ExpectContinueTimeout: time.Second,
			TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		}
	}
	base := strings.TrimRight(c.BaseURL, "/")
	return &Client{
		endpoint:      base + "/projects/" + url.PathEscape(c.ProjectID) + "/sdk/events/trigger",
		tokens:        c.Tokens,
		http:          &http.Client{Transport: rt, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		timeout:       c.Timeout,
		maxPayload:    c.MaxPayloadBytes,
		maxRetryAfter: c.MaxRetryAfter,
		now:           c.Now,
	}, nil
}

// Endpoint returns the App Event URL this client posts to.
func (c *Client) Endpoint() string { return c.endpoint }

// Event is one App Event to send.
type Event struct {
	Name    string // the App Event name defined in Paragon's dashboard, e.g. "Lead Created"
	UserID  string // the Connected User: the token's sub
	Payload []byte // a JSON object, sent byte for byte (never decoded, so big integers keep every digit)
}

// AppendBody appends the request body {"name":…,"payload":…} to dst.
func AppendBody(dst []byte, name string, payload []byte) []byte {
	n, _ := json.Marshal(name) // a string always marshals
	dst = append(dst, `{"name":`...)
	dst = append(dst, n...)
	dst = append(dst, `,"payload":`...)
	dst = append(dst, payload...)
	return append(dst, '}')
}

// Send posts one App Event and classifies the answer. It never returns an
// error by itself: every failure is in Result (Outcome Retry or Rejected).
func (c *Client) Send(ctx context.Context, ev Event) Result {
	r := Result{Started: c.now()}
	finish := func() Result { r.Finished = c.now(); return r }
	if len(ev.Payload) > c.maxPayload {
		r.Outcome, r.NotSent = Rejected, true
		r.Err = fmt.Errorf("payload is %d bytes, over the %d-byte limit (outbox_settings.max_payload_bytes / RELAY_MAX_PAYLOAD_BYTES)", len(ev.Payload), c.maxPayload)
		return finish()
	}
	if !json.Valid(ev.Payload) || len(bytes.TrimSpace(ev.Payload)) == 0 || bytes.TrimSpace(ev.Payload)[0] != '{' {
		r.Outcome, r.Err, r.NotSent = Rejected, errors.New("payload is not a JSON object"), true
		return finish()
	}
	tok, err := c.tokens.Token(ev.UserID)
	if err != nil {
		r.Outcome, r.Err, r.Systemic, r.NotSent = Rejected, err, false, true
		return finish()
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	body := AppendBody(make([]byte, 0, len(ev.Payload)+len(ev.Name)+32), ev.Name, ev.Payload)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		r.Outcome, r.Err, r.Systemic = Retry, fmt.Errorf("build request: %w", err), true
		return finish()
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := c.http.Do(req)
	if err != nil {
		r.Outcome, r.Systemic = Retry, true
		r.Err = describeTransportError(ctx, err, c.timeout)
		return finish()
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // drain so the connection is reused
	resp.Body.Close()
	r.Status = resp.StatusCode
	r.Outcome, r.Systemic = Classify(resp.StatusCode)
	if r.Outcome != Delivered {
		r.RetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"), c.now(), c.maxRetryAfter)
		r.Err = fmt.Errorf("paragon answered %d %s: %s", resp.StatusCode, http.StatusText(resp.StatusCode), sanitize(snippet))
	}
	return finish()
}

// Classify maps an HTTP status from Paragon to an outcome; systemic is true
// when the status says something about the relay's setup or Paragon's health
// rather than this event.
//
//   - 2xx: Delivered (Paragon answers 201).
//   - 408, 425, 429, 5xx: Retry, systemic (Paragon is slow, down or limiting).
//   - 401, 403: Retry, systemic: the token was refused (rotated or wrong
//     signing key, clock skew); it affects every event, so it is a
//     configuration problem, not the event's (docs/PARAGON.md).
//   - 404: Retry, systemic: the endpoint or project id is wrong.
//   - other 4xx (400, 409, 413, 422, …): Rejected: Paragon refused this
//     event's content; retrying cannot help.
//   - 1xx/3xx: Retry, systemic (unexpected: a proxy or redirect in the way).
func Classify(status int) (o Outcome, systemic bool) {
	switch {
	case status >= 200 && status < 300:
		return Delivered, false
	case status == 408, status == 425, status == 429, status >= 500:
		return Retry, true
	case status == 401, status == 403, status == 404:
		return Retry, true
	case status >= 400 && status < 500:
		return Rejected, false
	default:
		return Retry, true
	}
}

// ParseRetryAfter reads a Retry-After header in either form (RFC 9110
// §10.2.3): delay-seconds or an HTTP-date. It returns 0 for an absent or
// unparsable value or a date in the past, and never more than limit.
func ParseRetryAfter(v string, now time.Time, limit time.Duration) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	// A delay beyond int64 seconds (ErrRange, secs clamped to ±MaxInt64) is
	// still a delay: it clamps to limit below rather than reading as absent.
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		if secs <= 0 {
			return 0
		}
		if secs > int64(limit/time.Second) {
			return limit
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
		if d <= 0 {
			return 0
		}
	} else {
		return 0
	}
	if d > limit {
		return limit
	}
	return d
}

func describeTransportError(ctx context.Context, err error, timeout time.Duration) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // drop the URL: it is ours and adds nothing
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("no answer from Paragon within %s: %w", timeout, err)
	}
	return fmt.Errorf("request to Paragon failed: %w", err)
}

// sanitize keeps a short, printable excerpt of a response body for last_error.
func sanitize(b []byte) string {
	s := strings.ToValidUTF8(string(b), "?")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if s == "" {
		return "(empty body)"
	}
	return s
}
