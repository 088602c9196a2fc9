// Package config reads the relay's configuration from the environment (and
// lets command-line flags override it), applies documented defaults and
// validates everything at start-up, so that a bad setting fails before the
// first delivery with a *FieldError naming the variable. It never prints
// the signing key or a database password.
//
// Each setting is declared once, as a field of Config with struct tags
// (variable, default, group, flag, help; see SettingsOf): the environment
// is read by github.com/caarlos0/env/v11, flags are derived from the same
// tags, each subcommand takes the groups it uses (CommandGroups), and the
// README table is generated from them (make config-docs). Other commands
// declare their own settings structs the same way (ParseEnv, FlagParser,
// MarkdownTable).
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
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/paragon"
)

// Defaults, for code outside this package that needs one (the relay's
// zero-value defaults, the purge command, tests). Each equals the envDefault
// of its Config field, which is the declaration (a test keeps them equal).
const (
	DefaultDatabaseURL     = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	DefaultBaseURL         = paragon.DefaultBaseURL
	DefaultConcurrency     = paragon.DefaultMaxConns
	DefaultBatchSize       = 500
	DefaultPollInterval    = 50 * time.Millisecond
	DefaultMinPollInterval = 5 * time.Millisecond
	DefaultLease           = 2 * time.Minute
	DefaultSendTimeout     = paragon.DefaultTimeout
	DefaultMaxAttempts     = 25
	DefaultBackoffBase     = time.Second
	DefaultBackoffMax      = 10 * time.Minute
	DefaultShutdownGrace   = 20 * time.Second
	DefaultMaxPayloadBytes = paragon.DefaultMaxPayloadBytes
	DefaultMaxRetryAfter   = paragon.DefaultMaxRetryAfter
	DefaultTokenTTL        = paragon.DefaultTokenTTL
	DefaultAdminAddr       = ":9090"
	DefaultStartupTimeout  = time.Minute
	DefaultRetainDelivered = 7 * 24 * time.Hour
	DefaultRetainDead      = 30 * 24 * time.Hour
	DefaultPurgeInterval   = 10 * time.Minute
	DefaultLockTimeout     = 5 * time.Second
	// DefaultPurgeBatch is how many rows one purge statement deletes, for
	// the relay's retention loop and the purge command alike.
	DefaultPurgeBatch = 500
)

// Groups of Config's settings. Each subcommand takes the groups it uses
// (CommandGroups): its flags, and the variables whose errors it reports.
const (
	GroupDatabase  = "database"  // DATABASE_URL
	GroupParagon   = "paragon"   // project id, signing key, base URL, token lifetime
	GroupLog       = "log"       // LOG_FORMAT, LOG_LEVEL
	GroupRetention = "retention" // RELAY_RETAIN_DELIVERED, RELAY_RETAIN_DEAD
	GroupRelay     = "relay"     // the relay's own tuning
)

// Config is everything the relay needs, each setting declared once by its
// field's tags (see SettingsOf for the tag syntax): variable, default,
// group, flag and help. The README table is generated from them (make
// config-docs).
type Config struct {
	// DatabaseURL is the Postgres connection string (URL or key=value).
	DatabaseURL string `env:"DATABASE_URL" envDefault:"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable" group:"database" redact:"url" help:"Postgres connection string (URL or key=value)"`
	// ProjectID is the Paragon project id (from the dashboard). Required for
	// the relay; a single URL path segment.
	ProjectID string `env:"PARAGON_PROJECT_ID" group:"paragon" defaultDoc:"(required)" help:"Paragon project id"`
	// SigningKeyPEM is the project's signing key, PEM text (PKCS#1 or PKCS#8,
	// literal \n accepted). Exactly one of it and SigningKeyFile is set. No
	// flag: a key on the command line would show in process listings.
	SigningKeyPEM string `env:"PARAGON_SIGNING_KEY" group:"paragon" flag:"-" secret:"true" help:"signing key PEM text (PKCS#1 or PKCS#8; literal '\\n' accepted); no flag"`
	// SigningKeyFile is a path to the PEM file of the signing key.
	SigningKeyFile string `env:"PARAGON_SIGNING_KEY_FILE" group:"paragon" help:"path to the signing key PEM (exactly one of the two; warns if world-readable)"`
	// BaseURL is Paragon's API base; self-hosted Paragon:
	// https://zeus.<your domain>.
	BaseURL string `env:"PARAGON_BASE_URL" envDefault:"https://api.useparagon.com" group:"paragon" redact:"url" help:"Paragon API base (self-hosted: 'https://zeus.<your domain>')"`

	// Concurrency is how many App Events are sent at once (and the number of
	// keep-alive connections to Paragon). 1..10000.
	Concurrency int `env:"RELAY_CONCURRENCY" envDefault:"64" group:"relay" help:"App Events sent at once (= keep-alive connections)"`
	// BatchSize is the most rows one claim takes. 1..10000.
	BatchSize int `env:"RELAY_BATCH_SIZE" envDefault:"500" group:"relay" help:"most rows per claim and per record statement"`
	// PollInterval is how long the relay waits before looking again when
	// nothing was due: the longest a lead committed into an idle outbox waits
	// to be claimed (an empty claim costs the database ~0.2 ms). 1ms..1m.
	PollInterval time.Duration `env:"RELAY_POLL_INTERVAL" envDefault:"50ms" group:"relay" help:"longest wait between claims when nothing is due (idle)"`
	// MinPollInterval is the wait after a claim that found events but not a
	// full batch; it doubles per empty claim up to PollInterval (adaptive
	// polling: low latency under load, cheap when idle); used as
	// PollInterval when larger.
	MinPollInterval time.Duration `env:"RELAY_MIN_POLL_INTERVAL" envDefault:"5ms" group:"relay" help:"wait between claims while events keep arriving; doubles per empty claim up to RELAY_POLL_INTERVAL"`
	// Lease is how long a claimed row stays reserved for this relay before
	// another may rescue it; the relay extends it while it holds the row.
	// Must exceed SendTimeout by at least 10s.
	Lease time.Duration `env:"RELAY_LEASE" envDefault:"2m" group:"relay" help:"claim lease; extended while held; must exceed RELAY_SEND_TIMEOUT + 10s"`
	// SendTimeout bounds one HTTP exchange with Paragon. 100ms..10m.
	SendTimeout time.Duration `env:"RELAY_SEND_TIMEOUT" envDefault:"10s" group:"relay" help:"timeout of one HTTP exchange with Paragon"`
	// MaxAttempts: a retryable failure on this attempt makes the row dead
	// (25 is about 3 hours of capped backoff). 1..1000.
	MaxAttempts int `env:"RELAY_MAX_ATTEMPTS" envDefault:"25" group:"relay" help:"a retryable failure on this attempt makes the event 'dead'"`
	// BackoffBase is the delay after the first failed attempt; it doubles
	// each attempt (with jitter) up to BackoffMax.
	BackoffBase time.Duration `env:"RELAY_BACKOFF_BASE" envDefault:"1s" group:"relay" help:"delay after the first failure; doubles per attempt, with jitter"`
	// BackoffMax caps the retry delay.
	BackoffMax time.Duration `env:"RELAY_BACKOFF_MAX" envDefault:"10m" group:"relay" help:"longest retry delay"`
	// MaxRetryAfter caps how long a Retry-After from Paragon may defer an
	// event.
	MaxRetryAfter time.Duration `env:"RELAY_MAX_RETRY_AFTER" envDefault:"1h" group:"relay" help:"cap on how long Paragon's 'Retry-After' may defer an event"`
	// ShutdownGrace is how long sends in flight may finish after SIGTERM
	// before they are abandoned (their rows are then released or rescued).
	// Keep it below the orchestrator's kill timeout.
	ShutdownGrace time.Duration `env:"RELAY_SHUTDOWN_GRACE" envDefault:"20s" group:"relay" help:"time sends in flight get to finish after SIGTERM"`
	// MaxPayloadBytes: larger payloads go dead without being sent (Paragon
	// documents no limit). 1024..64 MiB.
	MaxPayloadBytes int `env:"RELAY_MAX_PAYLOAD_BYTES" envDefault:"1048576" group:"relay" help:"larger payloads go 'dead' unsent"`
	// RateLimit caps requests per second to Paragon across this relay;
	// 0 means no limit.
	RateLimit float64 `env:"RELAY_RATE_LIMIT" envDefault:"0" group:"relay" help:"requests per second to Paragon from this relay; 0 = unlimited"`
	// TokenTTL is the Paragon User Token lifetime. 10m..24h.
	TokenTTL time.Duration `env:"RELAY_TOKEN_TTL" envDefault:"1h" group:"paragon" help:"Paragon User Token lifetime"`
	// RelayID names this relay in leases and attempt records. Empty:
	// hostname-pid-random.
	RelayID string `env:"RELAY_ID" flag:"relay-id" group:"relay" defaultDoc:"host-pid-random" help:"name of this relay in leases and attempts"`
	// LogFormat is "text" or "json".
	LogFormat string `env:"LOG_FORMAT" envDefault:"text" group:"log" help:"'text' or 'json'"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `env:"LOG_LEVEL" envDefault:"info" group:"log" help:"'debug', 'info', 'warn', 'error'"`
	// StartupTimeout is how long the relay keeps trying to reach the
	// database at start-up (it may be starting too) before it gives up;
	// 0 tries once.
	StartupTimeout time.Duration `env:"RELAY_STARTUP_TIMEOUT" envDefault:"1m" group:"relay" help:"how long the relay keeps trying to reach the database at start-up before it exits 1"`
	// LockTimeout is the lock_timeout of the relay's sessions: a relay
	// statement that waits longer for a lock (behind a migration's ALTER
	// TABLE, say) fails and is retried like any database error, so the
	// relay never holds a lock queue up. 0 leaves the server's setting.
	// 0 or 1ms..1h.
	LockTimeout time.Duration `env:"RELAY_LOCK_TIMEOUT" envDefault:"5s" group:"relay" help:"'lock_timeout' of the relay's sessions: a relay statement waiting longer for a lock (e.g. behind a migration's 'ALTER TABLE outbox') fails and is retried, so it never holds up the lock queue; '0' keeps the server's"`
	// AdminAddr is where /metrics, /healthz and /readyz are served
	// (host:port); "off" disables the admin server.
	AdminAddr string `env:"RELAY_ADMIN_ADDR" envDefault:":9090" group:"relay" help:"address of '/metrics', '/healthz', '/readyz'; 'off' disables"`
	// RetainDelivered: delivered events (and their attempts) older than
	// this are purged by the relay (and by default by the purge command);
	// 0 keeps them.
	RetainDelivered time.Duration `env:"RELAY_RETAIN_DELIVERED" envDefault:"168h" group:"retention" help:"delivered events (and their attempts) older than this are purged by the relay; '0' keeps them"`
	// RetainDead: dead and skipped events older than this (by created_at) are purged; 0 keeps them.
	RetainDead time.Duration `env:"RELAY_RETAIN_DEAD" envDefault:"720h" group:"retention" help:"dead and skipped events older than this are purged; '0' keeps them"`
	// PurgeInterval is how often the relay runs retention, in batches of
	// DefaultPurgeBatch; 0 disables purging by the relay.
	PurgeInterval time.Duration `env:"RELAY_PURGE_INTERVAL" envDefault:"10m" group:"relay" help:"how often the relay purges, in batches of 500; '0' disables"`
}

// configSettings is SettingsOf(Config), computed once.
var configSettings = sync.OnceValue(func() []Setting { return SettingsOf(Config{}) })

// Settings lists Config's settings in declaration order.
func Settings() []Setting { return slices.Clone(configSettings()) }

// Defaults returns a Config holding every default (the envDefault tags).
func Defaults() Config { return DefaultsOf[Config]() }

// FromEnv returns Defaults overridden by every variable set in the
// environment (getenv is os.Getenv in production). A variable that does not
// parse keeps its default and is a *FieldError naming it (all are joined);
// ranges are Validate's job.
func FromEnv(getenv func(string) string) (Config, error) {
	c := Defaults()
	_, err := ParseEnv(&c, getenv)
	return c, err
}

// commandGroups: the groups of settings each subcommand of outbox-relay uses.
var commandGroups = map[string][]string{
	"relay":   {GroupDatabase, GroupParagon, GroupLog, GroupRetention, GroupRelay},
	"demo":    {GroupDatabase, GroupLog, GroupRetention, GroupRelay}, // Paragon is the local endpoint
	"bench":   {GroupDatabase, GroupLog, GroupRetention, GroupRelay}, // likewise
	"migrate": {GroupDatabase, GroupLog},
	"status":  {GroupDatabase},
	"inspect": {GroupDatabase},
	"retry":   {GroupDatabase},
	"skip":    {GroupDatabase},
	"purge":   {GroupDatabase, GroupRetention},
	"token":   {GroupParagon},
	"doctor":  {GroupDatabase, GroupParagon},
	"console": {GroupDatabase, GroupLog}, // plus its own CONSOLE_* (internal/console.Config)
}

// CommandGroups returns the groups of settings a subcommand uses, and false
// for a command that declares none.
func CommandGroups(command string) ([]string, bool) {
	g, ok := commandGroups[command]
	return slices.Clone(g), ok
}

// CommandSettings returns the settings a subcommand uses.
func CommandSettings(command string) []Setting {
	var out []Setting
	for _, s := range configSettings() {
		if usedBy(command, s) {
			out = append(out, s)
		}
	}
	return out
}

func usedBy(command string, s Setting) bool {
	g, ok := commandGroups[command]
	if !ok {
		panic(fmt.Sprintf("config: command %q declares no settings (add it to commandGroups)", command))
	}
	return slices.Contains(g, s.Group)
}

// FromEnvFor is FromEnv for one subcommand: every field is read, but only
// the variables the command uses are reported when they do not parse (a
// malformed RELAY_LEASE does not stop outbox-relay inspect).
func FromEnvFor(command string, getenv func(string) string) (Config, error) {
	c := Defaults()
	_, err := ParseEnv(&c, getenv)
	return c, filterFieldErrors(err, func(v string) bool {
		for _, s := range configSettings() {
			if s.Env == v {
				return usedBy(command, s)
			}
		}
		return true
	})
}

func filterFieldErrors(err error, keep func(envVar string) bool) error {
	if err == nil {
		return nil
	}
	var kept []error
	for _, e := range unjoin(err) {
		var fe *FieldError
		if errors.As(e, &fe) && !keep(fe.Var) {
			continue
		}
		kept = append(kept, e)
	}
	return errors.Join(kept...)
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// BindFlags registers a flag for every setting except the signing key's PEM
// text (a key on the command line would show in process listings), with the
// current value as default, so flags override the environment. Usage text
// shows DATABASE_URL with its password masked.
func (c *Config) BindFlags(fs *flag.FlagSet) {
	BindFlags(fs, c, nil)
}

// CommandFlags registers on fs the flags of the settings command uses and
// returns the parser to use instead of fs.Parse: it also accepts, with a
// warning, the other settings' flags that every command used to take.
// Register the command's own flags on fs before parsing.
func (c *Config) CommandFlags(command string, fs *flag.FlagSet) *FlagParser {
	p := NewFlagParser(fs)
	p.Bind(c, func(s Setting) bool { return usedBy(command, s) }, "outbox-relay "+command)
	return p
}

// ValidateDatabase checks only DatabaseURL (for commands that need nothing
// else). The error is a *FieldError naming the part of the connection
// string that is wrong, with any password masked.
func (c *Config) ValidateDatabase() error {
	if strings.TrimSpace(c.DatabaseURL) == "" {
		return &FieldError{Var: "DATABASE_URL", Reason: "is empty", Err: ErrRequired}
	}
	if _, err := pgxpool.ParseConfig(c.DatabaseURL); err != nil {
		return DatabaseURLError(c.DatabaseURL, err)
	}
	return nil
}

// Validate checks every setting the relay needs and returns all problems
// at once (errors.Join of *FieldError, one per problem, each naming its
// variable; secrets never shown). It does not read the key; LoadKey does.
func (c *Config) Validate() error {
	var errs []error
	add := func(v, raw, reason string, cause error) { errs = append(errs, fieldErr(v, raw, reason, cause)) }
	if err := c.ValidateDatabase(); err != nil {
		errs = append(errs, err)
	}
	if strings.TrimSpace(c.ProjectID) == "" {
		add("PARAGON_PROJECT_ID", "", "is required (your Paragon project id, from the dashboard)", ErrRequired)
	} else if strings.ContainsAny(c.ProjectID, "/?#% \t\n") {
		add("PARAGON_PROJECT_ID", c.ProjectID, "is not a valid project id (one URL path segment)", ErrInvalid)
	}
	switch {
	case c.SigningKeyPEM == "" && c.SigningKeyFile == "":
		add("PARAGON_SIGNING_KEY", "", "or PARAGON_SIGNING_KEY_FILE is required (the project's signing key, PEM)", ErrRequired)
	case c.SigningKeyPEM != "" && c.SigningKeyFile != "":
		add("PARAGON_SIGNING_KEY", "", "is set, and so is PARAGON_SIGNING_KEY_FILE: set only one of PARAGON_SIGNING_KEY and PARAGON_SIGNING_KEY_FILE", ErrInvalid)
	}
	if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		add("PARAGON_BASE_URL", c.BaseURL, "is not an http(s) URL", ErrInvalid)
	} else if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		add("PARAGON_BASE_URL", c.BaseURL, "must not have a query or fragment (the endpoint path is appended to it)", ErrInvalid)
	}
	intRange := func(name string, v, lo, hi int) {
		if v < lo || v > hi {
			add(name, strconv.Itoa(v), fmt.Sprintf("is out of range %d..%d", lo, hi), ErrOutOfRange)
		}
	}
	durRange := func(name string, v, lo, hi time.Duration) {
		if v < lo || v > hi {
			add(name, v.String(), fmt.Sprintf("is out of range %s..%s", lo, hi), ErrOutOfRange)
		}
	}
	intRange("RELAY_CONCURRENCY", c.Concurrency, 1, 10000)
	intRange("RELAY_BATCH_SIZE", c.BatchSize, 1, 10000)
	durRange("RELAY_POLL_INTERVAL", c.PollInterval, time.Millisecond, time.Minute)
	durRange("RELAY_MIN_POLL_INTERVAL", c.MinPollInterval, time.Millisecond, time.Minute)
	durRange("RELAY_SEND_TIMEOUT", c.SendTimeout, 100*time.Millisecond, 10*time.Minute)
	durRange("RELAY_LEASE", c.Lease, time.Second, 24*time.Hour)
	if c.Lease < c.SendTimeout+10*time.Second {
		add("RELAY_LEASE", c.Lease.String(), fmt.Sprintf("must exceed RELAY_SEND_TIMEOUT=%s by at least 10s, or a live relay's lease could expire mid-send", c.SendTimeout), ErrInvalid)
	}
	intRange("RELAY_MAX_ATTEMPTS", c.MaxAttempts, 1, 1000)
	durRange("RELAY_BACKOFF_BASE", c.BackoffBase, time.Millisecond, time.Hour)
	durRange("RELAY_BACKOFF_MAX", c.BackoffMax, c.BackoffBase, 7*24*time.Hour)
	durRange("RELAY_MAX_RETRY_AFTER", c.MaxRetryAfter, time.Second, 7*24*time.Hour)
	durRange("RELAY_SHUTDOWN_GRACE", c.ShutdownGrace, 0, time.Hour)
	intRange("RELAY_MAX_PAYLOAD_BYTES", c.MaxPayloadBytes, 1024, 64<<20)
	if c.RateLimit < 0 || math.IsNaN(c.RateLimit) || math.IsInf(c.RateLimit, 0) {
		add("RELAY_RATE_LIMIT", strconv.FormatFloat(c.RateLimit, 'g', -1, 64), "must be 0 (unlimited) or a positive number", ErrOutOfRange)
	}
	durRange("RELAY_TOKEN_TTL", c.TokenTTL, 10*time.Minute, 24*time.Hour)
	if c.LogFormat != "text" && c.LogFormat != "json" {
		add("LOG_FORMAT", c.LogFormat, "must be text or json", ErrInvalid)
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		add("LOG_LEVEL", c.LogLevel, "must be debug, info, warn or error", ErrInvalid)
	}
	if c.AdminAddr != "off" {
		if _, _, err := net.SplitHostPort(c.AdminAddr); err != nil {
			add("RELAY_ADMIN_ADDR", c.AdminAddr, "is not host:port (e.g. :9090) or off", ErrInvalid)
		}
	}
	durRange("RELAY_RETAIN_DELIVERED", c.RetainDelivered, 0, 10*365*24*time.Hour)
	durRange("RELAY_RETAIN_DEAD", c.RetainDead, 0, 10*365*24*time.Hour)
	durRange("RELAY_PURGE_INTERVAL", c.PurgeInterval, 0, 7*24*time.Hour)
	durRange("RELAY_STARTUP_TIMEOUT", c.StartupTimeout, 0, time.Hour)
	if c.LockTimeout != 0 {
		durRange("RELAY_LOCK_TIMEOUT", c.LockTimeout, time.Millisecond, time.Hour)
	}
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
	// to the next unescaped whitespace, a backslash escaping the character
	// after it, as libpq reads it.
	kvPassword = regexp.MustCompile(`(?is)(\b\w*password)\s*=\s*('(?:[^'\\]|\\.)*'?|(?:\\.|[^\s\\])*\\?)`)
)

// passwordSpans returns the byte ranges of s that RedactURL masks, located
// the same way: the userinfo password and password= query values of a URL,
// or password= values of the key=value form (quotes included).
func passwordSpans(s string) [][2]int {
	var spans [][2]int
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || scheme == "" || strings.TrimLeft(scheme, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.") != "" {
		for _, m := range kvPassword.FindAllStringSubmatchIndex(s, -1) {
			spans = append(spans, [2]int{m[4], m[5]})
		}
		return spans
	}
	off := len(scheme) + len("://")
	slash := strings.IndexByte(rest, '/')
	if slash < 0 {
		slash = len(rest)
	}
	q := strings.IndexByte(rest, '?')
	if q < 0 {
		q = len(rest)
	}
	userEnd := 0
	if at := max(strings.LastIndexByte(rest[:slash], '@'), strings.LastIndexByte(rest[:q], '@')); at >= 0 {
		if c := strings.IndexByte(rest[:at], ':'); c >= 0 {
			spans = append(spans, [2]int{off + c + 1, off + at})
			userEnd = at
		}
	}
	for _, m := range queryPassword.FindAllStringSubmatchIndex(rest, -1) {
		if a, b := max(m[3], userEnd), m[1]; b > a {
			spans = append(spans, [2]int{off + a, off + b})
		}
	}
	return spans
}
