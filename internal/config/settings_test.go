package config_test

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/config"
	"github.com/paragon-outbox/outbox-relay/internal/operator"
	"github.com/paragon-outbox/outbox-relay/internal/paragon"
)

// TestNamedDefaultsAreTheDeclaredOnes: the Default* constants other
// packages use equal the envDefault declarations, and every declared
// default has its constant (so no package keeps a copy of its own).
func TestNamedDefaultsAreTheDeclaredOnes(t *testing.T) {
	named := map[string]any{
		"DatabaseURL":     config.DefaultDatabaseURL,
		"BaseURL":         config.DefaultBaseURL,
		"Concurrency":     config.DefaultConcurrency,
		"BatchSize":       config.DefaultBatchSize,
		"PollInterval":    config.DefaultPollInterval,
		"MinPollInterval": config.DefaultMinPollInterval,
		"Lease":           config.DefaultLease,
		"SendTimeout":     config.DefaultSendTimeout,
		"MaxAttempts":     config.DefaultMaxAttempts,
		"BackoffBase":     config.DefaultBackoffBase,
		"BackoffMax":      config.DefaultBackoffMax,
		"MaxRetryAfter":   config.DefaultMaxRetryAfter,
		"ShutdownGrace":   config.DefaultShutdownGrace,
		"MaxPayloadBytes": config.DefaultMaxPayloadBytes,
		"TokenTTL":        config.DefaultTokenTTL,
		"AdminAddr":       config.DefaultAdminAddr,
		"StartupTimeout":  config.DefaultStartupTimeout,
		"RetainDelivered": config.DefaultRetainDelivered,
		"RetainDead":      config.DefaultRetainDead,
		"PurgeInterval":   config.DefaultPurgeInterval,
		"LockTimeout":     config.DefaultLockTimeout,
		// Defaults no other package needs: the declaration is the only copy.
		"RateLimit": float64(0),
		"LogFormat": "text",
		"LogLevel":  "info",
	}
	def := reflect.ValueOf(config.Defaults())
	for _, s := range config.Settings() {
		want, ok := named[s.Field]
		if s.Default == "" {
			if ok {
				t.Errorf("%s: constant %v but no envDefault", s.Env, want)
			}
			continue
		}
		if !ok {
			t.Errorf("%s: envDefault %q has no Default constant in this test", s.Env, s.Default)
			continue
		}
		got := def.FieldByName(s.Field).Interface()
		if reflect.TypeOf(want).ConvertibleTo(reflect.TypeOf(got)) {
			want = reflect.ValueOf(want).Convert(reflect.TypeOf(got)).Interface()
		}
		if got != want {
			t.Errorf("%s: envDefault gives %v, constant is %v", s.Env, got, want)
		}
	}
	// Other packages take theirs from here.
	if operator.DefaultDeliveredAge != config.DefaultRetainDelivered || operator.DefaultDeadAge != config.DefaultRetainDead || operator.DefaultPurgeBatch != config.DefaultPurgeBatch {
		t.Error("operator's purge defaults differ from config's")
	}
	if paragon.DefaultTokenTTL != config.DefaultTokenTTL || paragon.DefaultBaseURL != config.DefaultBaseURL {
		t.Error("paragon's defaults differ from config's")
	}
}

// TestFlagNamesUsersPassKeepWorking: every flag name of the 26 settings
// that had one stays accepted by the relay, with the same variable.
func TestFlagNamesUsersPassKeepWorking(t *testing.T) {
	before := map[string]string{
		"database-url": "DATABASE_URL", "project-id": "PARAGON_PROJECT_ID", "signing-key-file": "PARAGON_SIGNING_KEY_FILE",
		"base-url": "PARAGON_BASE_URL", "concurrency": "RELAY_CONCURRENCY", "batch-size": "RELAY_BATCH_SIZE",
		"poll-interval": "RELAY_POLL_INTERVAL", "min-poll-interval": "RELAY_MIN_POLL_INTERVAL", "lease": "RELAY_LEASE",
		"send-timeout": "RELAY_SEND_TIMEOUT", "max-attempts": "RELAY_MAX_ATTEMPTS", "backoff-base": "RELAY_BACKOFF_BASE",
		"backoff-max": "RELAY_BACKOFF_MAX", "max-retry-after": "RELAY_MAX_RETRY_AFTER", "shutdown-grace": "RELAY_SHUTDOWN_GRACE",
		"max-payload-bytes": "RELAY_MAX_PAYLOAD_BYTES", "rate-limit": "RELAY_RATE_LIMIT", "token-ttl": "RELAY_TOKEN_TTL",
		"relay-id": "RELAY_ID", "log-format": "LOG_FORMAT", "log-level": "LOG_LEVEL", "startup-timeout": "RELAY_STARTUP_TIMEOUT",
		"admin-addr": "RELAY_ADMIN_ADDR", "retain-delivered": "RELAY_RETAIN_DELIVERED", "retain-dead": "RELAY_RETAIN_DEAD",
		"purge-interval": "RELAY_PURGE_INTERVAL",
	}
	if len(before) != 26 {
		t.Fatalf("test premise: %d flags", len(before))
	}
	c := config.Defaults()
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	config.NewFlagParser(fs).Bind(&c, nil, "relay")
	for name, v := range before {
		f := fs.Lookup(name)
		if f == nil {
			t.Errorf("flag -%s is gone", name)
			continue
		}
		if !strings.Contains(f.Usage, "(env "+v+")") {
			t.Errorf("flag -%s: usage %q does not name %s", name, f.Usage, v)
		}
	}
	// Names are derived from the variables, except RELAY_ID's.
	for _, s := range config.Settings() {
		if s.Flag != "" && s.Flag != config.FlagName(s.Env) && s.Env != "RELAY_ID" {
			t.Errorf("%s: flag -%s, derived name -%s", s.Env, s.Flag, config.FlagName(s.Env))
		}
	}
}

// TestFieldErrorsAreTyped: every problem from FromEnv and Validate is a
// *FieldError naming its variable, with the cause reachable by errors.Is/As.
func TestFieldErrorsAreTyped(t *testing.T) {
	_, err := config.FromEnv(envMap(map[string]string{"RELAY_CONCURRENCY": "eight", "RELAY_LEASE": "two minutes", "RELAY_RATE_LIMIT": "fast"}))
	errs := fieldErrors(t, err)
	if len(errs) != 3 {
		t.Fatalf("%d errors: %v", len(errs), err)
	}
	byVar := map[string]*config.FieldError{}
	for _, fe := range errs {
		byVar[fe.Var] = fe
	}
	if fe := byVar["RELAY_CONCURRENCY"]; fe == nil || fe.Value != "eight" || fe.Reason != "is not a whole number" {
		t.Errorf("RELAY_CONCURRENCY: %#v", fe)
	} else if ne := (*strconv.NumError)(nil); !errors.As(fe, &ne) || !errors.Is(fe, strconv.ErrSyntax) {
		t.Errorf("RELAY_CONCURRENCY does not unwrap to the strconv error: %v", fe.Err)
	}
	if fe := byVar["RELAY_LEASE"]; fe == nil || fe.Value != "two minutes" || !strings.HasPrefix(fe.Error(), `RELAY_LEASE="two minutes" is not a duration`) {
		t.Errorf("RELAY_LEASE: %v", fe)
	}
	if fe := byVar["RELAY_RATE_LIMIT"]; fe == nil || fe.Value != "fast" {
		t.Errorf("RELAY_RATE_LIMIT: %#v", fe)
	}

	for _, tc := range []struct {
		mod      func(*config.Config)
		variable string
		value    string
		sentinel error
	}{
		{func(c *config.Config) { c.Concurrency = 0 }, "RELAY_CONCURRENCY", "0", config.ErrOutOfRange},
		{func(c *config.Config) { c.Lease = 15 * time.Second }, "RELAY_LEASE", "15s", config.ErrInvalid},
		{func(c *config.Config) { c.ProjectID = "" }, "PARAGON_PROJECT_ID", "", config.ErrRequired},
		{func(c *config.Config) { c.ProjectID = "a/b" }, "PARAGON_PROJECT_ID", "a/b", config.ErrInvalid},
		{func(c *config.Config) { c.SigningKeyPEM = "" }, "PARAGON_SIGNING_KEY", "", config.ErrRequired},
		{func(c *config.Config) { c.SigningKeyFile = "/k.pem" }, "PARAGON_SIGNING_KEY", "", config.ErrInvalid},
		{func(c *config.Config) { c.BaseURL = "ftp://x" }, "PARAGON_BASE_URL", "ftp://x", config.ErrInvalid},
		{func(c *config.Config) { c.RateLimit = -1 }, "RELAY_RATE_LIMIT", "-1", config.ErrOutOfRange},
		{func(c *config.Config) { c.LogFormat = "xml" }, "LOG_FORMAT", "xml", config.ErrInvalid},
		{func(c *config.Config) { c.AdminAddr = "9090" }, "RELAY_ADMIN_ADDR", "9090", config.ErrInvalid},
		{func(c *config.Config) { c.LockTimeout = -time.Second }, "RELAY_LOCK_TIMEOUT", "-1s", config.ErrOutOfRange},
		{func(c *config.Config) { c.LockTimeout = 2 * time.Hour }, "RELAY_LOCK_TIMEOUT", "2h0m0s", config.ErrOutOfRange},
		{func(c *config.Config) { c.DatabaseURL = "" }, "DATABASE_URL", "", config.ErrRequired},
		{func(c *config.Config) { c.DatabaseURL = "postgres://db:x/app" }, "DATABASE_URL", "postgres://db:x/app", config.ErrInvalid},
	} {
		c := validConfig()
		tc.mod(&c)
		errs := fieldErrors(t, c.Validate())
		if len(errs) != 1 {
			t.Errorf("%s: %d errors: %v", tc.variable, len(errs), errs)
			continue
		}
		fe := errs[0]
		if fe.Var != tc.variable || fe.Value != tc.value || !errors.Is(fe, tc.sentinel) {
			t.Errorf("%s: got %#v (is %v: %v)", tc.variable, fe, tc.sentinel, errors.Is(fe, tc.sentinel))
		}
	}
	// Valid edge values of the new setting.
	for _, d := range []time.Duration{0, time.Millisecond, time.Hour} {
		c := validConfig()
		c.LockTimeout = d
		if err := c.Validate(); err != nil {
			t.Errorf("RELAY_LOCK_TIMEOUT=%s: %v", d, err)
		}
	}
}

func fieldErrors(t *testing.T, err error) []*config.FieldError {
	t.Helper()
	if err == nil {
		return nil
	}
	list := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	}
	var out []*config.FieldError
	for _, e := range list {
		var fe *config.FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("not a *config.FieldError: %T %v", e, e)
		}
		out = append(out, fe)
	}
	return out
}

// TestSecretValuesNeverInErrors: a secret setting's value appears neither
// in the error text nor through Unwrap, even when it does not parse.
func TestSecretValuesNeverInErrors(t *testing.T) {
	type secrets struct {
		PIN   int    `env:"TEST_PIN" secret:"true" help:"a secret number"`
		Token string `env:"TEST_TOKEN" secret:"true" flag:"-" help:"a secret string"`
	}
	var s secrets
	_, err := config.ParseEnv(&s, envMap(map[string]string{"TEST_PIN": "hunter2-1234", "TEST_TOKEN": "tok-hunter2"}))
	errs := fieldErrors(t, err)
	if len(errs) != 1 || errs[0].Var != "TEST_PIN" {
		t.Fatalf("errors: %v", err)
	}
	var ne *strconv.NumError
	if strings.Contains(err.Error(), "hunter2") || errs[0].Value != "" || errors.As(err, &ne) || !errors.Is(err, config.ErrInvalid) {
		t.Fatalf("secret shown: %q, value %q, cause %v", err, errs[0].Value, errors.Unwrap(errs[0]))
	}
	if s.Token != "tok-hunter2" {
		t.Fatalf("Token = %q", s.Token)
	}
	// The signing key: Validate's errors about it never show it.
	c := validConfig()
	c.SigningKeyPEM = "-----BEGIN PRIVATE KEY-----hunter2"
	c.SigningKeyFile = "/k.pem"
	if err := c.Validate(); err == nil || strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "BEGIN") {
		t.Fatalf("Validate: %v", err)
	}
	// Usage text of a secret flag (if one had a flag) shows no value.
	type secretFlag struct {
		PIN string `env:"TEST_PIN" secret:"true" help:"a secret"`
	}
	sf := secretFlag{PIN: "hunter2"}
	var out bytes.Buffer
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(&out)
	config.BindFlags(fs, &sf, nil)
	fs.PrintDefaults()
	if strings.Contains(out.String(), "hunter2") || !strings.Contains(out.String(), "-pin") {
		t.Fatalf("usage: %s", out.String())
	}
}

// TestDatabaseURLErrorNamesThePart: a malformed DATABASE_URL is reported
// with the part that is wrong, and never with its password.
func TestDatabaseURLErrorNamesThePart(t *testing.T) {
	const pw = "hunter2-s3cret"
	for _, tc := range []struct {
		dsn  string
		want []string
	}{
		{"postgres://alice:" + pw + "@db/app?sslmode=disabled", []string{"sslmode is invalid", "sslmode=disabled is not one of disable, allow, prefer, require, verify-ca, verify-full", "postgres://alice:xxxxx@db/app?sslmode=disabled"}},
		{"host=db user=alice password=" + pw + " sslmode=disabled", []string{"sslmode is invalid", "sslmode=disabled", "password=xxxxx"}},
		{"postgres://alice:" + pw + "@db:notaport/app", []string{"invalid port"}},
		{"host=db password='" + pw + "' port=x", []string{"invalid port"}},
		{"postgres://alice:" + pw + "@db/app?connect_timeout=soon", []string{"invalid connect_timeout", `"soon"`}},
		{"postgres://alice:" + pw + "@db/app?pool_max_conns=many", []string{"pool_max_conns"}},
		{"postgres://alice:" + pw + "@[::1/app", []string{"failed to parse as URL"}},
		{"postgres://alice:hun ter2@db/app", []string{"spaces"}},
		{"postgres://alice:hunter2%ZZ@db/app", []string{"DATABASE_URL"}},
		{"mysql://alice:" + pw + "@db/app", []string{"keyword/value"}},
	} {
		c := validConfig()
		c.DatabaseURL = tc.dsn
		err := c.ValidateDatabase()
		if err == nil {
			t.Errorf("%q accepted", tc.dsn)
			continue
		}
		msg := err.Error()
		if strings.Contains(msg, "hunter2") || strings.Contains(msg, "s3cret") || strings.Contains(msg, "ter2") {
			t.Errorf("password shown: %s", msg)
		}
		var fe *config.FieldError
		if !errors.As(err, &fe) || fe.Var != "DATABASE_URL" || !strings.HasPrefix(msg, "DATABASE_URL does not parse") {
			t.Errorf("%q: not a DATABASE_URL FieldError: %v", tc.dsn, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%q: error lacks %q:\n%s", tc.dsn, w, msg)
			}
		}
	}
}

// TestInspectTakesOnlyItsFlags: a command's usage lists only the flags of
// the settings it uses; the others still work, with a warning; unknown
// flags are still refused.
func TestInspectTakesOnlyItsFlags(t *testing.T) {
	for cmd, want := range map[string][]string{
		"inspect": {"database-url"},
		"status":  {"database-url"},
		"retry":   {"database-url"},
		"purge":   {"database-url", "retain-delivered", "retain-dead"},
		"token":   {"project-id", "signing-key-file", "base-url", "token-ttl"},
		"doctor":  {"database-url", "project-id", "signing-key-file", "base-url", "token-ttl"},
		"migrate": {"database-url", "log-format", "log-level"},
	} {
		c := config.Defaults()
		var out bytes.Buffer
		fs := flag.NewFlagSet("outbox-relay "+cmd, flag.ContinueOnError)
		fs.SetOutput(&out)
		p := c.CommandFlags(cmd, fs)
		var got []string
		fs.VisitAll(func(f *flag.Flag) { got = append(got, f.Name) })
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s flags %v, want %v", cmd, got, want)
		}
		if _, err := p.Parse([]string{"-h"}); !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("%s -h: %v", cmd, err)
		}
		for _, w := range want {
			if !strings.Contains(out.String(), "-"+w) {
				t.Errorf("%s -h lacks -%s:\n%s", cmd, w, out.String())
			}
		}
		for _, hidden := range []string{"-concurrency", "-lease", "-relay-id"} {
			if strings.Contains(out.String(), hidden) {
				t.Errorf("%s -h lists %s:\n%s", cmd, hidden, out.String())
			}
		}
	}

	// A relay flag passed to inspect: accepted, applied, warned about.
	c := config.Defaults()
	var out bytes.Buffer
	fs := flag.NewFlagSet("outbox-relay inspect", flag.ContinueOnError)
	fs.SetOutput(&out)
	p := c.CommandFlags("inspect", fs)
	asJSON := fs.Bool("json", false, "print JSON")
	warnings, err := p.Parse([]string{"-concurrency", "8", "-json", "-database-url=postgres://u:pw@h/d", "lead:42", "-x"})
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "-concurrency") || !strings.Contains(warnings[0], "not a setting of outbox-relay inspect") {
		t.Fatalf("warnings %q", warnings)
	}
	if c.Concurrency != 8 || !*asJSON || c.DatabaseURL != "postgres://u:pw@h/d" {
		t.Fatalf("not applied: concurrency %d json %v url %q", c.Concurrency, *asJSON, c.DatabaseURL)
	}
	if !slices.Equal(fs.Args(), []string{"lead:42", "-x"}) || fs.NArg() != 2 {
		t.Fatalf("args %q", fs.Args())
	}
	// The visible flag set knows what was set (as after fs.Parse), and only
	// its own flags.
	var set []string
	fs.Visit(func(f *flag.Flag) { set = append(set, f.Name) })
	if !slices.Equal(set, []string{"database-url", "json"}) {
		t.Fatalf("fs.Visit: %v", set)
	}
	// Arguments after "--" stay arguments, even if they look like flags.
	c = config.Defaults()
	fs = flag.NewFlagSet("outbox-relay inspect", flag.ContinueOnError)
	fs.SetOutput(&out)
	p = c.CommandFlags("inspect", fs)
	if _, err := p.Parse([]string{"--", "-5"}); err != nil || !slices.Equal(fs.Args(), []string{"-5"}) {
		t.Fatalf("-- -5: %v %q", err, fs.Args())
	}
	// Unknown flags and bad values are still errors, with usage.
	for _, args := range [][]string{{"-no-such-flag"}, {"-concurrency", "many"}, {"-lease=forever"}} {
		c := config.Defaults()
		out.Reset()
		fs := flag.NewFlagSet("outbox-relay inspect", flag.ContinueOnError)
		fs.SetOutput(&out)
		if _, err := c.CommandFlags("inspect", fs).Parse(args); err == nil {
			t.Errorf("%q accepted", args)
		}
		if !strings.Contains(out.String(), "-database-url") || strings.Contains(out.String(), "-batch-size") {
			t.Errorf("%q: usage:\n%s", args, out.String())
		}
	}
}

// TestEveryCommandDeclaresItsSettings: the relay takes every setting, and
// commands that talk to no database take no DATABASE_URL.
func TestEveryCommandDeclaresItsSettings(t *testing.T) {
	if n := len(config.CommandSettings("relay")); n != len(config.Settings()) {
		t.Errorf("relay uses %d of %d settings", n, len(config.Settings()))
	}
	for _, s := range config.CommandSettings("token") {
		if s.Env == "DATABASE_URL" {
			t.Error("token takes DATABASE_URL")
		}
	}
	if _, ok := config.CommandGroups("paragon-local"); ok {
		t.Error("paragon-local has its own flags")
	}
	for _, s := range config.Settings() {
		if s.Group == "" {
			t.Errorf("%s has no group", s.Env)
		}
	}
}

// TestFromEnvForReportsOnlyTheCommandsVariables: a malformed relay setting
// does not stop inspect; a malformed DATABASE_URL-group one would.
func TestFromEnvForReportsOnlyTheCommandsVariables(t *testing.T) {
	env := envMap(map[string]string{"RELAY_LEASE": "forever", "RELAY_TOKEN_TTL": "long", "RELAY_RETAIN_DEAD": "x"})
	if _, err := config.FromEnvFor("inspect", env); err != nil {
		t.Errorf("inspect: %v", err)
	}
	_, err := config.FromEnvFor("purge", env)
	if errs := fieldErrors(t, err); len(errs) != 1 || errs[0].Var != "RELAY_RETAIN_DEAD" {
		t.Errorf("purge: %v", err)
	}
	_, err = config.FromEnvFor("relay", env)
	if errs := fieldErrors(t, err); len(errs) != 3 {
		t.Errorf("relay: %v", err)
	}
}

// consoleSettings is how another command declares its settings with the
// same mechanism (the console's, as planned).
type consoleSettings struct {
	Addr          string        `env:"CONSOLE_ADDR" envDefault:"127.0.0.1:8080" help:"listen address of the console"`
	BasicAuthFile string        `env:"CONSOLE_BASIC_AUTH_FILE" help:"file holding user:password"`
	BasicAuth     string        `env:"CONSOLE_BASIC_AUTH" secret:"true" flag:"-" help:"user:password; no flag"`
	ReadOnly      bool          `env:"CONSOLE_READ_ONLY" deprecatedEnv:"CONSOLE_READONLY" deprecatedFlag:"readonly" help:"refuse re-drives"`
	Refresh       time.Duration `env:"CONSOLE_REFRESH" envDefault:"5s" help:"page refresh"`
}

func TestAnotherCommandDeclaresItsOwnSettings(t *testing.T) {
	c := config.DefaultsOf[consoleSettings]()
	if c.Addr != "127.0.0.1:8080" || c.Refresh != 5*time.Second || c.ReadOnly {
		t.Fatalf("defaults %+v", c)
	}
	warnings, err := config.ParseEnv(&c, envMap(map[string]string{"CONSOLE_READONLY": "true", "CONSOLE_BASIC_AUTH": "admin:hunter2", "CONSOLE_REFRESH": " 2s "}))
	if err != nil || !c.ReadOnly || c.BasicAuth != "admin:hunter2" || c.Refresh != 2*time.Second {
		t.Fatalf("ParseEnv: %v %+v", err, c)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "CONSOLE_READONLY is deprecated; set CONSOLE_READ_ONLY") {
		t.Fatalf("warnings %q", warnings)
	}
	// The successor wins over the deprecated variable, silently.
	c = config.DefaultsOf[consoleSettings]()
	warnings, _ = config.ParseEnv(&c, envMap(map[string]string{"CONSOLE_READONLY": "true", "CONSOLE_READ_ONLY": "false"}))
	if c.ReadOnly || len(warnings) != 0 {
		t.Fatalf("successor lost: %+v %q", c, warnings)
	}

	c = config.DefaultsOf[consoleSettings]()
	var out bytes.Buffer
	fs := flag.NewFlagSet("outbox-relay console", flag.ContinueOnError)
	fs.SetOutput(&out)
	p := config.NewFlagParser(fs)
	p.Bind(&c, nil, "outbox-relay console")
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	if want := []string{"addr", "basic-auth-file", "read-only", "refresh"}; !slices.Equal(names, want) {
		t.Fatalf("flags %v, want %v", names, want)
	}
	warnings, err = p.Parse([]string{"-addr", ":9999", "-readonly", "-refresh=1m"})
	if err != nil || c.Addr != ":9999" || !c.ReadOnly || c.Refresh != time.Minute {
		t.Fatalf("Parse: %v %+v", err, c)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "-readonly is deprecated; use -read-only") {
		t.Fatalf("warnings %q", warnings)
	}
	fs.Usage()
	if strings.Contains(out.String(), "readonly") || !strings.Contains(out.String(), "-read-only") || !strings.Contains(out.String(), "(env CONSOLE_ADDR)") {
		t.Fatalf("usage:\n%s", out.String())
	}
	// Its README table comes from the same declarations.
	table := config.MarkdownTable(config.SettingsOf(consoleSettings{}))
	for _, w := range []string{"| `CONSOLE_ADDR` | `127.0.0.1:8080` | `-addr` | listen address of the console |", "| `CONSOLE_BASIC_AUTH` |  |  | user:password; no flag |", "| `CONSOLE_READ_ONLY` | `false` | `-read-only` |"} {
		if !strings.Contains(table, w) {
			t.Errorf("table lacks %q:\n%s", w, table)
		}
	}
}

// TestREADMEGeneratedBlockIsCurrent: the README's configuration table is
// what make config-docs generates from the declarations.
func TestREADMEGeneratedBlockIsCurrent(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	got, err := config.Block(string(readme), "settings")
	if err != nil {
		t.Fatal(err)
	}
	if want := config.READMESettings(); got != want {
		t.Fatalf("README.md's settings block is stale: run make config-docs\n--- README\n%s\n--- generated\n%s", got, want)
	}
}
