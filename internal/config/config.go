// Package config reads the relay's configuration from the environment (and
// lets command-line flags override it), applies documented defaults and
// validates everything at start-up, so that a bad setting fails before the
// first delivery with a message naming the variable. It never prints the
// signing key.
package config

import (
	"crypto/rsa"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paragon-outbox/outbox-relay/internal/paragon"
)

// Defaults. Each is documented on the Config field it fills.
const (
	DefaultDatabaseURL     = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	DefaultConcurrency     = 64
	DefaultBatchSize       = 500
	DefaultPollInterval    = 250 * time.Millisecond
	DefaultMinPollInterval = 5 * time.Millisecond
	DefaultLease           = 2 * time.Minute
	DefaultSendTimeout     = 10 * time.Second
	DefaultMaxAttempts     = 25
	DefaultBackoffBase     = time.Second
	DefaultBackoffMax      = 10 * time.Minute
	DefaultShutdownGrace   = 20 * time.Second
	DefaultMaxPayloadBytes = 1 << 20
	DefaultMaxRetryAfter   = time.Hour
	DefaultTokenTTL        = time.Hour
	DefaultAdminAddr       = ":9090"
	DefaultStartupTimeout  = time.Minute
	DefaultLockTimeout     = 5 * time.Second
	DefaultRetainDelivered = 7 * 24 * time.Hour
	DefaultRetainDead      = 30 * 24 * time.Hour
	DefaultPurgeInterval   = 10 * time.Minute
)

// Config is everything the relay needs. Environment variable names are in
// each field's `env` tag and listed by Vars.
type Config struct {
	// DatabaseURL is the Postgres connection string (URL or key=value).
	// Default DefaultDatabaseURL (the local server).
	DatabaseURL string `env:"DATABASE_URL"`
	// ProjectID is the Paragon project id (from the dashboard). Required for
	// the relay; a single URL path segment.
	ProjectID string `env:"PARAGON_PROJECT_ID"`
	// SigningKeyPEM is the project's signing key, PEM text (PKCS#1 or PKCS#8,
	// literal \n accepted). Exactly one of it and SigningKeyFile is set.
	SigningKeyPEM string `env:"PARAGON_SIGNING_KEY" secret:"true"`
	// SigningKeyFile is a path to the PEM file of the signing key.
	SigningKeyFile string `env:"PARAGON_SIGNING_KEY_FILE"`
	// BaseURL is Paragon's API base. Default https://api.useparagon.com;
	// self-hosted Paragon: https://zeus.<your domain>.
	BaseURL string `env:"PARAGON_BASE_URL"`

	// Concurrency is how many App Events are sent at once (and the number of
	// keep-alive connections to Paragon). Default 64; 1..10000.
	Concurrency int `env:"RELAY_CONCURRENCY"`
	// BatchSize is the most rows one claim takes. Default 500; 1..10000.
	BatchSize int `env:"RELAY_BATCH_SIZE"`
	// PollInterval is how long the relay waits before looking again when
	// nothing was due. Default 250ms; 1ms..1m.
	PollInterval time.Duration `env:"RELAY_POLL_INTERVAL"`
	// MinPollInterval is the wait after a claim that found events but not a
	// full batch; it doubles per empty claim up to PollInterval (adaptive
	// polling: low latency under load, cheap when idle). Default 5ms; used
	// as PollInterval when larger.
	MinPollInterval time.Duration `env:"RELAY_MIN_POLL_INTERVAL"`
	// Lease is how long a claimed row stays reserved for this relay before
	// another may rescue it; the relay extends it while it holds the row.
	// Default 2m; must exceed SendTimeout by at least 10s.
	Lease time.Duration `env:"RELAY_LEASE"`
	// SendTimeout bounds one HTTP exchange with Paragon. Default 10s.
	SendTimeout time.Duration `env:"RELAY_SEND_TIMEOUT"`
	// MaxAttempts: a retryable failure on this attempt makes the row dead.
	// Default 25 (about 3 hours of capped backoff); 1..1000.
	MaxAttempts int `env:"RELAY_MAX_ATTEMPTS"`
	// BackoffBase is the delay after the first failed attempt; it doubles
	// each attempt (with jitter) up to BackoffMax. Default 1s.
	BackoffBase time.Duration `env:"RELAY_BACKOFF_BASE"`
	// BackoffMax caps the retry delay. Default 10m.
	BackoffMax time.Duration `env:"RELAY_BACKOFF_MAX"`
	// MaxRetryAfter caps how long a Retry-After from Paragon may defer an
	// event. Default 1h.
	MaxRetryAfter time.Duration `env:"RELAY_MAX_RETRY_AFTER"`
	// ShutdownGrace is how long sends in flight may finish after SIGTERM
	// before they are abandoned (their rows are then released or rescued).
	// Default 20s; keep it below the orchestrator's kill timeout.
	ShutdownGrace time.Duration `env:"RELAY_SHUTDOWN_GRACE"`
	// MaxPayloadBytes: larger payloads go dead without being sent.
	// Default 1 MiB (Paragon documents no limit).
	MaxPayloadBytes int `env:"RELAY_MAX_PAYLOAD_BYTES"`
	// RateLimit caps requests per second to Paragon across this relay;
	// 0 (default) means no limit.
	RateLimit float64 `env:"RELAY_RATE_LIMIT"`
	// TokenTTL is the Paragon User Token lifetime. Default 1h; at least 10m.
	TokenTTL time.Duration `env:"RELAY_TOKEN_TTL"`
	// RelayID names this relay in leases and attempt records. Default
	// hostname-pid-random.
	RelayID string `env:"RELAY_ID"`
	// LogFormat is "text" (default) or "json".
	LogFormat string `env:"LOG_FORMAT"`
	// LogLevel is debug, info (default), warn or error.
	LogLevel string `env:"LOG_LEVEL"`
	// StartupTimeout is how long the relay keeps trying to reach the
	// database at start-up (it may be starting too) before it gives up.
	// Default 60s; 0 tries once.
	StartupTimeout time.Duration `env:"RELAY_STARTUP_TIMEOUT"`
	// LockTimeout is the lock_timeout of the relay's sessions: a relay
	// statement that waits longer for a lock (behind a migration's ALTER
	// TABLE, say) fails and is retried, so the relay never holds a lock
	// queue up. Default 5s; 0 leaves the server's setting.
	LockTimeout time.Duration `env:"RELAY_LOCK_TIMEOUT"`
	// AdminAddr is where /metrics, /healthz and /readyz are served
	// (host:port). Default ":9090"; "off" disables the admin server.
	AdminAddr string `env:"RELAY_ADMIN_ADDR"`
	// RetainDelivered: delivered events (and their attempts) older than
	// this are purged by the relay. Default 168h (7 days); 0 keeps them.
	RetainDelivered time.Duration `env:"RELAY_RETAIN_DELIVERED"`
	// RetainDead: dead events older than this are purged. Default 720h
	// (30 days); 0 keeps them.
	RetainDead time.Duration `env:"RELAY_RETAIN_DEAD"`
	// PurgeInterval is how often the relay runs retention, in small
	// batches. Default 10m; 0 disables purging by the relay.
	PurgeInterval time.Duration `env:"RELAY_PURGE_INTERVAL"`
}

// Defaults returns a Config holding every default.
func Defaults() Config {
	return Config{
		DatabaseURL:     DefaultDatabaseURL,
		BaseURL:         paragon.DefaultBaseURL,
		Concurrency:     DefaultConcurrency,
		BatchSize:       DefaultBatchSize,
		PollInterval:    DefaultPollInterval,
		MinPollInterval: DefaultMinPollInterval,
		Lease:           DefaultLease,
		SendTimeout:     DefaultSendTimeout,
		MaxAttempts:     DefaultMaxAttempts,
		BackoffBase:     DefaultBackoffBase,
		BackoffMax:      DefaultBackoffMax,
		MaxRetryAfter:   DefaultMaxRetryAfter,
		ShutdownGrace:   DefaultShutdownGrace,
		MaxPayloadBytes: DefaultMaxPayloadBytes,
		TokenTTL:        DefaultTokenTTL,
		LogFormat:       "text",
		LogLevel:        "info",
		AdminAddr:       DefaultAdminAddr,
		StartupTimeout:  DefaultStartupTimeout,
		LockTimeout:     DefaultLockTimeout,
		RetainDelivered: DefaultRetainDelivered,
		RetainDead:      DefaultRetainDead,
		PurgeInterval:   DefaultPurgeInterval,
	}
}

// FromEnv returns Defaults overridden by every variable set in the
// environment (getenv is os.Getenv in production). A variable that does not
// parse is an error naming it; validation of ranges is Validate's job.
func FromEnv(getenv func(string) string) (Config, error) {
	c := Defaults()
	var errs []error
	str := func(dst *string, name string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	num := func(dst *int, name string) {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q is not a whole number", name, v))
				return
			}
			*dst = n
		}
	}
	dur := func(dst *time.Duration, name string) {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q is not a duration (examples: 500ms, 30s, 2m)", name, v))
				return
			}
			*dst = d
		}
	}
	str(&c.DatabaseURL, "DATABASE_URL")
	str(&c.ProjectID, "PARAGON_PROJECT_ID")
	c.SigningKeyPEM = getenv("PARAGON_SIGNING_KEY")
	str(&c.SigningKeyFile, "PARAGON_SIGNING_KEY_FILE")
	str(&c.BaseURL, "PARAGON_BASE_URL")
	num(&c.Concurrency, "RELAY_CONCURRENCY")
	num(&c.BatchSize, "RELAY_BATCH_SIZE")
	dur(&c.PollInterval, "RELAY_POLL_INTERVAL")
	dur(&c.MinPollInterval, "RELAY_MIN_POLL_INTERVAL")
	dur(&c.Lease, "RELAY_LEASE")
	dur(&c.SendTimeout, "RELAY_SEND_TIMEOUT")
	num(&c.MaxAttempts, "RELAY_MAX_ATTEMPTS")
	dur(&c.BackoffBase, "RELAY_BACKOFF_BASE")
	dur(&c.BackoffMax, "RELAY_BACKOFF_MAX")
	dur(&c.MaxRetryAfter, "RELAY_MAX_RETRY_AFTER")
	dur(&c.ShutdownGrace, "RELAY_SHUTDOWN_GRACE")
	num(&c.MaxPayloadBytes, "RELAY_MAX_PAYLOAD_BYTES")
	if v := strings.TrimSpace(getenv("RELAY_RATE_LIMIT")); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("RELAY_RATE_LIMIT=%q is not a number (requests per second)", v))
		} else {
			c.RateLimit = f
		}
	}
	dur(&c.TokenTTL, "RELAY_TOKEN_TTL")
	str(&c.RelayID, "RELAY_ID")
	str(&c.LogFormat, "LOG_FORMAT")
	str(&c.LogLevel, "LOG_LEVEL")
	str(&c.AdminAddr, "RELAY_ADMIN_ADDR")
	dur(&c.StartupTimeout, "RELAY_STARTUP_TIMEOUT")
	dur(&c.LockTimeout, "RELAY_LOCK_TIMEOUT")
	dur(&c.RetainDelivered, "RELAY_RETAIN_DELIVERED")
	dur(&c.RetainDead, "RELAY_RETAIN_DEAD")
	dur(&c.PurgeInterval, "RELAY_PURGE_INTERVAL")
	return c, errors.Join(errs...)
}

// BindFlags registers a flag for every setting except the signing key's PEM
// text (a key on the command line would show in process listings), with the
// current value as default, so flags override the environment.
func (c *Config) BindFlags(fs *flag.FlagSet) {
	// Shown redacted in the usage text (printed on -h and on any flag error).
	fs.Var(redactedURL{&c.DatabaseURL}, "database-url", "Postgres connection `string` (env DATABASE_URL)")
	fs.StringVar(&c.ProjectID, "project-id", c.ProjectID, "Paragon project id (env PARAGON_PROJECT_ID)")
	fs.StringVar(&c.SigningKeyFile, "signing-key-file", c.SigningKeyFile, "path to the signing key PEM (env PARAGON_SIGNING_KEY_FILE)")
	fs.StringVar(&c.BaseURL, "base-url", c.BaseURL, "Paragon API base URL (env PARAGON_BASE_URL)")
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "App Events sent at once (env RELAY_CONCURRENCY)")
	fs.IntVar(&c.BatchSize, "batch-size", c.BatchSize, "rows per claim (env RELAY_BATCH_SIZE)")
	fs.DurationVar(&c.PollInterval, "poll-interval", c.PollInterval, "longest idle poll interval (env RELAY_POLL_INTERVAL)")
	fs.DurationVar(&c.MinPollInterval, "min-poll-interval", c.MinPollInterval, "poll interval while events arrive (env RELAY_MIN_POLL_INTERVAL)")
	fs.DurationVar(&c.Lease, "lease", c.Lease, "lease length of a claim (env RELAY_LEASE)")
	fs.DurationVar(&c.SendTimeout, "send-timeout", c.SendTimeout, "timeout of one send (env RELAY_SEND_TIMEOUT)")
	fs.IntVar(&c.MaxAttempts, "max-attempts", c.MaxAttempts, "attempts before an event goes dead (env RELAY_MAX_ATTEMPTS)")
	fs.DurationVar(&c.BackoffBase, "backoff-base", c.BackoffBase, "first retry delay (env RELAY_BACKOFF_BASE)")
	fs.DurationVar(&c.BackoffMax, "backoff-max", c.BackoffMax, "longest retry delay (env RELAY_BACKOFF_MAX)")
	fs.DurationVar(&c.MaxRetryAfter, "max-retry-after", c.MaxRetryAfter, "cap on Paragon's Retry-After (env RELAY_MAX_RETRY_AFTER)")
	fs.DurationVar(&c.ShutdownGrace, "shutdown-grace", c.ShutdownGrace, "time for sends in flight at shutdown (env RELAY_SHUTDOWN_GRACE)")
	fs.IntVar(&c.MaxPayloadBytes, "max-payload-bytes", c.MaxPayloadBytes, "largest payload sent (env RELAY_MAX_PAYLOAD_BYTES)")
	fs.Float64Var(&c.RateLimit, "rate-limit", c.RateLimit, "requests per second to Paragon, 0 = unlimited (env RELAY_RATE_LIMIT)")
	fs.DurationVar(&c.TokenTTL, "token-ttl", c.TokenTTL, "Paragon User Token lifetime (env RELAY_TOKEN_TTL)")
	fs.StringVar(&c.RelayID, "relay-id", c.RelayID, "name of this relay in leases (env RELAY_ID)")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "text or json (env LOG_FORMAT)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error (env LOG_LEVEL)")
	fs.DurationVar(&c.StartupTimeout, "startup-timeout", c.StartupTimeout, "how long to wait for the database at start-up (env RELAY_STARTUP_TIMEOUT)")
	fs.DurationVar(&c.LockTimeout, "lock-timeout", c.LockTimeout, "lock_timeout of the relay's statements; 0 = server's (env RELAY_LOCK_TIMEOUT)")
	fs.StringVar(&c.AdminAddr, "admin-addr", c.AdminAddr, "metrics/health address, or off (env RELAY_ADMIN_ADDR)")
	fs.DurationVar(&c.RetainDelivered, "retain-delivered", c.RetainDelivered, "purge delivered events older than this, 0 = keep (env RELAY_RETAIN_DELIVERED)")
	fs.DurationVar(&c.RetainDead, "retain-dead", c.RetainDead, "purge dead events older than this, 0 = keep (env RELAY_RETAIN_DEAD)")
	fs.DurationVar(&c.PurgeInterval, "purge-interval", c.PurgeInterval, "how often the relay purges, 0 = never (env RELAY_PURGE_INTERVAL)")
}

// redactedURL is a string flag whose value is displayed through RedactURL,
// so flag usage never prints a database password.
type redactedURL struct{ p *string }

func (r redactedURL) String() string {
	if r.p == nil {
		return ""
	}
	return RedactURL(*r.p)
}

func (r redactedURL) Set(v string) error { *r.p = v; return nil }

// ValidateDatabase checks only DatabaseURL (for commands that need nothing else).
func (c *Config) ValidateDatabase() error {
	if strings.TrimSpace(c.DatabaseURL) == "" {
		return errors.New("DATABASE_URL is empty")
	}
	if _, err := pgx.ParseConfig(c.DatabaseURL); err != nil {
		// pgx's message may quote the URL, and with it a password: do not wrap it.
		return errors.New("DATABASE_URL does not parse as a Postgres connection string (postgres://user:password@host:5432/db?sslmode=... or key=value form)")
	}
	return nil
}

// Validate checks every setting the relay needs and returns all problems
// at once, each naming its variable. It does not read the key; LoadKey does.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if err := c.ValidateDatabase(); err != nil {
		errs = append(errs, err)
	}
	if strings.TrimSpace(c.ProjectID) == "" {
		add("PARAGON_PROJECT_ID is required (your Paragon project id, from the dashboard)")
	} else if strings.ContainsAny(c.ProjectID, "/?#% \t\n") {
		add("PARAGON_PROJECT_ID=%q is not a valid project id", c.ProjectID)
	}
	switch {
	case c.SigningKeyPEM == "" && c.SigningKeyFile == "":
		add("PARAGON_SIGNING_KEY or PARAGON_SIGNING_KEY_FILE is required (the project's signing key, PEM)")
	case c.SigningKeyPEM != "" && c.SigningKeyFile != "":
		add("set only one of PARAGON_SIGNING_KEY and PARAGON_SIGNING_KEY_FILE")
	}
	if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		add("PARAGON_BASE_URL=%q is not an http(s) URL", RedactURL(c.BaseURL))
	} else if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		add("PARAGON_BASE_URL=%q must not have a query or fragment (the endpoint path is appended to it)", RedactURL(c.BaseURL))
	}
	intRange := func(name string, v, lo, hi int) {
		if v < lo || v > hi {
			add("%s=%d is out of range %d..%d", name, v, lo, hi)
		}
	}
	durRange := func(name string, v, lo, hi time.Duration) {
		if v < lo || v > hi {
			add("%s=%s is out of range %s..%s", name, v, lo, hi)
		}
	}
	intRange("RELAY_CONCURRENCY", c.Concurrency, 1, 10000)
	intRange("RELAY_BATCH_SIZE", c.BatchSize, 1, 10000)
	durRange("RELAY_POLL_INTERVAL", c.PollInterval, time.Millisecond, time.Minute)
	durRange("RELAY_MIN_POLL_INTERVAL", c.MinPollInterval, time.Millisecond, time.Minute)
	durRange("RELAY_SEND_TIMEOUT", c.SendTimeout, 100*time.Millisecond, 10*time.Minute)
	durRange("RELAY_LEASE", c.Lease, time.Second, 24*time.Hour)
	if c.Lease < c.SendTimeout+10*time.Second {
		add("RELAY_LEASE=%s must exceed RELAY_SEND_TIMEOUT=%s by at least 10s, or a live relay's lease could expire mid-send", c.Lease, c.SendTimeout)
	}
	intRange("RELAY_MAX_ATTEMPTS", c.MaxAttempts, 1, 1000)
	durRange("RELAY_BACKOFF_BASE", c.BackoffBase, time.Millisecond, time.Hour)
	durRange("RELAY_BACKOFF_MAX", c.BackoffMax, c.BackoffBase, 7*24*time.Hour)
	durRange("RELAY_MAX_RETRY_AFTER", c.MaxRetryAfter, time.Second, 7*24*time.Hour)
	durRange("RELAY_SHUTDOWN_GRACE", c.ShutdownGrace, 0, time.Hour)
	intRange("RELAY_MAX_PAYLOAD_BYTES", c.MaxPayloadBytes, 1024, 64<<20)
	if c.RateLimit < 0 || math.IsNaN(c.RateLimit) || math.IsInf(c.RateLimit, 0) {
		add("RELAY_RATE_LIMIT=%g must be 0 (unlimited) or a positive number", c.RateLimit)
	}
	durRange("RELAY_TOKEN_TTL", c.TokenTTL, 10*time.Minute, 24*time.Hour)
	if c.LogFormat != "text" && c.LogFormat != "json" {
		add("LOG_FORMAT=%q must be text or json", c.LogFormat)
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		add("LOG_LEVEL=%q must be debug, info, warn or error", c.LogLevel)
	}
	if c.AdminAddr != "off" {
		if _, _, err := net.SplitHostPort(c.AdminAddr); err != nil {
			add("RELAY_ADMIN_ADDR=%q is not host:port (e.g. :9090) or off", c.AdminAddr)
		}
	}
	durRange("RELAY_RETAIN_DELIVERED", c.RetainDelivered, 0, 10*365*24*time.Hour)
	durRange("RELAY_RETAIN_DEAD", c.RetainDead, 0, 10*365*24*time.Hour)
	durRange("RELAY_PURGE_INTERVAL", c.PurgeInterval, 0, 7*24*time.Hour)
	durRange("RELAY_STARTUP_TIMEOUT", c.StartupTimeout, 0, time.Hour)
	durRange("RELAY_LOCK_TIMEOUT", c.LockTimeout, 0, time.Hour)
	return errors.Join(errs...)
}

// KeyWarning is non-empty when the key file is accessible to others (any
// user). Group access is allowed: Kubernetes mounts Secrets group-readable
// when fsGroup is set (kubernetes/kubernetes#57923).
type KeyWarning string

// LoadKey reads and parses the signing key from SigningKeyPEM or
// SigningKeyFile. Errors name the variable and never contain key material.
// A key file accessible to others returns a warning to log.
func (c *Config) LoadKey() (*rsa.PrivateKey, KeyWarning, error) {
	var warn KeyWarning
	if c.SigningKeyPEM != "" && c.SigningKeyFile != "" {
		return nil, "", errors.New("set only one of PARAGON_SIGNING_KEY and PARAGON_SIGNING_KEY_FILE")
	}
	text, src := c.SigningKeyPEM, "PARAGON_SIGNING_KEY"
	if c.SigningKeyFile != "" {
		src = "PARAGON_SIGNING_KEY_FILE"
		st, err := os.Stat(c.SigningKeyFile)
		if err != nil {
			return nil, "", fmt.Errorf("%s: cannot read %q: %w", src, c.SigningKeyFile, errors.Unwrap(err))
		}
		if st.Mode().Perm()&0o007 != 0 {
			warn = KeyWarning(fmt.Sprintf("signing key file %s is accessible to other users (mode %v); chmod 600 it", c.SigningKeyFile, st.Mode().Perm()))
		}
		b, err := os.ReadFile(c.SigningKeyFile)
		if err != nil {
			return nil, "", fmt.Errorf("%s: cannot read %q: %w", src, c.SigningKeyFile, errors.Unwrap(err))
		}
		text = string(b)
	}
	key, err := paragon.ParseSigningKey(text)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", src, err)
	}
	return key, warn, nil
}

// String renders the configuration for logs with the signing key redacted
// and any password in DATABASE_URL masked.
func (c Config) String() string {
	cc := c
	if cc.SigningKeyPEM != "" {
		cc.SigningKeyPEM = "<redacted>"
	}
	cc.DatabaseURL = RedactURL(cc.DatabaseURL)
	return fmt.Sprintf("%+v", struct{ Config plain }{plain(cc)})
}

type plain Config

// RedactURL masks the password of a postgres:// URL (in the userinfo or a
// password= query parameter) or of the key=value form (password=…, also
// quoted) for display. It errs on the side of hiding too much: it also works
// on strings that do not parse, since those are the ones that end up in
// error messages.
func RedactURL(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || scheme == "" || strings.TrimLeft(scheme, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.") != "" {
		return kvPassword.ReplaceAllString(s, "${1}=xxxxx")
	}
	// libpq (and pgx) end the userinfo at the first '@' before the first
	// '/', so a password may hold unescaped '#', '?' or ':'. Masking up
	// to the last '@' before the first '/' (or, failing that, before the
	// first '?', for a password holding a '/') hides at least that much.
	slash := strings.IndexByte(rest, '/')
	if slash < 0 {
		slash = len(rest)
	}
	q := strings.IndexByte(rest, '?')
	if q < 0 {
		q = len(rest)
	}
	at := max(strings.LastIndexByte(rest[:slash], '@'), strings.LastIndexByte(rest[:q], '@'))
	if at >= 0 {
		if c := strings.IndexByte(rest[:at], ':'); c >= 0 {
			rest = rest[:c+1] + "xxxxx" + rest[at:]
		}
	}
	return scheme + "://" + queryPassword.ReplaceAllString(rest, "${1}xxxxx")
}

var (
	// password=… and sslpassword=… in a URL's query string.
	queryPassword = regexp.MustCompile(`(?i)([?&][^=&?]*password=)[^&]*`)
	// password=… in key=value form: spaces around '=' allowed, the value
	// single-quoted (with backslash escapes, possibly unterminated) or up
	// to the next whitespace, as libpq reads it.
	kvPassword = regexp.MustCompile(`(?i)(\b\w*password)\s*=\s*('(?:[^'\\]|\\.)*'?|\S*)`)
)
