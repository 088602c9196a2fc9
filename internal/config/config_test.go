package config_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/config"
	"github.com/paragon-outbox/outbox-relay/internal/paragon"
)

var testKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

func keyPEM(t *testing.T) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(testKey())
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// assertNoKeyText fails if s holds any base64 line of the PEM, or any
// 16-character run of one.
func assertNoKeyText(t *testing.T, s, pemText string) {
	t.Helper()
	n := 0
	for _, l := range strings.Split(pemText, "\n") {
		if l == "" || strings.HasPrefix(l, "-----") {
			continue
		}
		n++
		for i := 0; i+16 <= len(l); i += 8 {
			if strings.Contains(s, l[i:i+16]) {
				t.Fatalf("key material %q in %q", l[i:i+16], s)
			}
		}
	}
	if n < 10 {
		t.Fatalf("test premise: PEM has only %d body lines", n)
	}
}

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// envVars lists every env tag of Config, in field order.
func envVars(t *testing.T) []string {
	t.Helper()
	var out []string
	typ := reflect.TypeFor[config.Config]()
	for i := range typ.NumField() {
		tag := typ.Field(i).Tag.Get("env")
		if tag == "" {
			t.Fatalf("field %s has no env tag", typ.Field(i).Name)
		}
		out = append(out, tag)
	}
	return out
}

func TestFromEnvDefaults(t *testing.T) {
	c, err := config.FromEnv(envMap(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, config.Defaults()) {
		t.Fatalf("FromEnv(empty) = %+v, want Defaults()", c)
	}
	// The documented defaults.
	want := config.Config{
		DatabaseURL:     "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		BaseURL:         "https://api.useparagon.com",
		Concurrency:     64,
		BatchSize:       500,
		PollInterval:    50 * time.Millisecond,
		MinPollInterval: 5 * time.Millisecond,
		Lease:           2 * time.Minute,
		SendTimeout:     10 * time.Second,
		MaxAttempts:     25,
		BackoffBase:     time.Second,
		BackoffMax:      10 * time.Minute,
		MaxRetryAfter:   time.Hour,
		ShutdownGrace:   20 * time.Second,
		MaxPayloadBytes: 1 << 20,
		TokenTTL:        time.Hour,
		LogFormat:       "text",
		LogLevel:        "info",
		AdminAddr:       ":9090",
		StartupTimeout:  time.Minute,
		RetainDelivered: 7 * 24 * time.Hour,
		RetainDead:      30 * 24 * time.Hour,
		PurgeInterval:   10 * time.Minute,
		LockTimeout:     5 * time.Second,
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("defaults = %+v\nwant       %+v", c, want)
	}
}

func TestFromEnvOverridesEveryVariable(t *testing.T) {
	env := map[string]string{
		"DATABASE_URL":             "postgres://relay:pw@db.internal:6543/outbox?sslmode=require",
		"PARAGON_PROJECT_ID":       "proj-abc",
		"PARAGON_SIGNING_KEY":      "-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----",
		"PARAGON_SIGNING_KEY_FILE": "/run/secrets/paragon.pem",
		"PARAGON_BASE_URL":         "https://zeus.example.com",
		"RELAY_CONCURRENCY":        " 8 ",
		"RELAY_BATCH_SIZE":         "100",
		"RELAY_POLL_INTERVAL":      "1s",
		"RELAY_MIN_POLL_INTERVAL":  "20ms",
		"RELAY_LEASE":              "5m",
		"RELAY_SEND_TIMEOUT":       "30s",
		"RELAY_MAX_ATTEMPTS":       "7",
		"RELAY_BACKOFF_BASE":       "2s",
		"RELAY_BACKOFF_MAX":        "1h",
		"RELAY_MAX_RETRY_AFTER":    "15m",
		"RELAY_SHUTDOWN_GRACE":     "45s",
		"RELAY_MAX_PAYLOAD_BYTES":  "65536",
		"RELAY_RATE_LIMIT":         "12.5",
		"RELAY_TOKEN_TTL":          "30m",
		"RELAY_ID":                 "relay-a",
		"LOG_FORMAT":               "json",
		"LOG_LEVEL":                "debug",
		"RELAY_ADMIN_ADDR":         "127.0.0.1:9191",
		"RELAY_STARTUP_TIMEOUT":    "5s",
		"RELAY_LOCK_TIMEOUT":       "3s",
		"RELAY_RETAIN_DELIVERED":   "24h",
		"RELAY_RETAIN_DEAD":        "0s",
		"RELAY_PURGE_INTERVAL":     "1m",
	}
	want := config.Config{
		DatabaseURL:     "postgres://relay:pw@db.internal:6543/outbox?sslmode=require",
		ProjectID:       "proj-abc",
		SigningKeyPEM:   "-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----",
		SigningKeyFile:  "/run/secrets/paragon.pem",
		BaseURL:         "https://zeus.example.com",
		Concurrency:     8,
		BatchSize:       100,
		PollInterval:    time.Second,
		MinPollInterval: 20 * time.Millisecond,
		Lease:           5 * time.Minute,
		SendTimeout:     30 * time.Second,
		MaxAttempts:     7,
		BackoffBase:     2 * time.Second,
		BackoffMax:      time.Hour,
		MaxRetryAfter:   15 * time.Minute,
		ShutdownGrace:   45 * time.Second,
		MaxPayloadBytes: 65536,
		RateLimit:       12.5,
		TokenTTL:        30 * time.Minute,
		RelayID:         "relay-a",
		LogFormat:       "json",
		LogLevel:        "debug",
		AdminAddr:       "127.0.0.1:9191",
		StartupTimeout:  5 * time.Second,
		LockTimeout:     3 * time.Second,
		RetainDelivered: 24 * time.Hour,
		RetainDead:      0,
		PurgeInterval:   time.Minute,
	}
	// Every variable of Config is in this test, and every one changes its
	// field away from the default (so a variable FromEnv ignores shows).
	for _, v := range envVars(t) {
		if _, ok := env[v]; !ok {
			t.Fatalf("variable %s is not covered by this test", v)
		}
	}
	def, got := reflect.ValueOf(config.Defaults()), reflect.ValueOf(want)
	for i := range def.NumField() {
		if reflect.DeepEqual(def.Field(i).Interface(), got.Field(i).Interface()) {
			t.Fatalf("test premise: %s equals its default", def.Type().Field(i).Name)
		}
	}

	c, err := config.FromEnv(envMap(env))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, want) {
		cv := reflect.ValueOf(c)
		for i := range cv.NumField() {
			if !reflect.DeepEqual(cv.Field(i).Interface(), got.Field(i).Interface()) {
				t.Errorf("%s = %v, want %v", cv.Type().Field(i).Name, cv.Field(i).Interface(), got.Field(i).Interface())
			}
		}
	}
	if err := c.Validate(); err != nil {
		// Both key variables are set on purpose; nothing else may be wrong.
		if msg := err.Error(); strings.Count(msg, "\n") != 0 || !strings.Contains(msg, "only one of") {
			t.Fatalf("Validate: %v", err)
		}
	}
}

func TestFromEnvMalformed(t *testing.T) {
	for _, tc := range []struct{ name, value string }{
		{"RELAY_CONCURRENCY", "eight"},
		{"RELAY_CONCURRENCY", "1.5"},
		{"RELAY_CONCURRENCY", "99999999999999999999"},
		{"RELAY_BATCH_SIZE", "1e3"},
		{"RELAY_MAX_ATTEMPTS", "-"},
		{"RELAY_MAX_PAYLOAD_BYTES", "1MiB"},
		{"RELAY_POLL_INTERVAL", "250"}, // a duration needs a unit
		{"RELAY_LEASE", "two minutes"},
		{"RELAY_SEND_TIMEOUT", "10 s"},
		{"RELAY_BACKOFF_BASE", "1d"},
		{"RELAY_BACKOFF_MAX", "x"},
		{"RELAY_MAX_RETRY_AFTER", "1hour"},
		{"RELAY_SHUTDOWN_GRACE", "s"},
		{"RELAY_TOKEN_TTL", "3600"},
		{"RELAY_RATE_LIMIT", "fast"},
		{"RELAY_RATE_LIMIT", "10/s"},
	} {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			c, err := config.FromEnv(envMap(map[string]string{tc.name: tc.value}))
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.name) || !strings.Contains(err.Error(), tc.value) {
				t.Fatalf("error %q does not name %s and its value", err, tc.name)
			}
			// The bad variable leaves its default in place.
			if !reflect.DeepEqual(c, config.Defaults()) {
				t.Fatalf("config changed: %+v", c)
			}
		})
	}
}

func TestFromEnvReportsAllErrors(t *testing.T) {
	bad := map[string]string{
		"RELAY_CONCURRENCY":   "many",
		"RELAY_LEASE":         "forever",
		"RELAY_RATE_LIMIT":    "fast",
		"RELAY_TOKEN_TTL":     "1",
		"RELAY_MAX_ATTEMPTS":  "lots",
		"PARAGON_PROJECT_ID":  "fine",
		"RELAY_POLL_INTERVAL": "2s",
	}
	c, err := config.FromEnv(envMap(bad))
	if err == nil {
		t.Fatal("no error")
	}
	for _, v := range []string{"RELAY_CONCURRENCY", "RELAY_LEASE", "RELAY_RATE_LIMIT", "RELAY_TOKEN_TTL", "RELAY_MAX_ATTEMPTS"} {
		if !strings.Contains(err.Error(), v) {
			t.Errorf("error does not report %s:\n%v", v, err)
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 5 {
		t.Errorf("%d errors reported, want 5:\n%v", n, err)
	}
	// The good variables still apply.
	if c.ProjectID != "fine" || c.PollInterval != 2*time.Second {
		t.Errorf("good variables lost: %+v", c)
	}
}

// validConfig passes Validate.
func validConfig() config.Config {
	c := config.Defaults()
	c.ProjectID = "proj-1"
	c.SigningKeyPEM = "(not parsed by Validate)"
	return c
}

func TestValidateAcceptsValid(t *testing.T) {
	c := validConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	// Boundaries are inclusive.
	for name, mod := range map[string]func(*config.Config){
		"min ints": func(c *config.Config) { c.Concurrency, c.BatchSize, c.MaxAttempts, c.MaxPayloadBytes = 1, 1, 1, 1024 },
		"max ints": func(c *config.Config) {
			c.Concurrency, c.BatchSize, c.MaxAttempts, c.MaxPayloadBytes = 10000, 10000, 1000, 64<<20
		},
		"lease = send+10": func(c *config.Config) { c.SendTimeout, c.Lease = 20*time.Second, 30*time.Second },
		"min durations": func(c *config.Config) {
			c.PollInterval, c.SendTimeout, c.Lease, c.BackoffBase, c.BackoffMax = time.Millisecond, 100*time.Millisecond, 11*time.Second, time.Millisecond, time.Millisecond
			c.MaxRetryAfter, c.ShutdownGrace, c.TokenTTL = time.Second, 0, 10*time.Minute
		},
		"key file instead":  func(c *config.Config) { c.SigningKeyPEM, c.SigningKeyFile = "", "/x.pem" },
		"rate limit":        func(c *config.Config) { c.RateLimit = 0.5 },
		"self-hosted http":  func(c *config.Config) { c.BaseURL = "http://zeus.internal:8080" },
		"json, upper level": func(c *config.Config) { c.LogFormat, c.LogLevel = "json", "WARN" },
		"key/value dsn":     func(c *config.Config) { c.DatabaseURL = "host=db user=relay password=secret dbname=outbox" },
	} {
		c := validConfig()
		mod(&c)
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestValidateNamesEachProblem(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*config.Config)
		want string
	}{
		{"concurrency 0", func(c *config.Config) { c.Concurrency = 0 }, "RELAY_CONCURRENCY=0"},
		{"concurrency high", func(c *config.Config) { c.Concurrency = 10001 }, "RELAY_CONCURRENCY"},
		{"batch 0", func(c *config.Config) { c.BatchSize = 0 }, "RELAY_BATCH_SIZE"},
		{"batch high", func(c *config.Config) { c.BatchSize = 10001 }, "RELAY_BATCH_SIZE"},
		{"poll 0", func(c *config.Config) { c.PollInterval = 0 }, "RELAY_POLL_INTERVAL"},
		{"poll high", func(c *config.Config) { c.PollInterval = 2 * time.Minute }, "RELAY_POLL_INTERVAL"},
		{"send timeout low", func(c *config.Config) { c.SendTimeout = 99 * time.Millisecond }, "RELAY_SEND_TIMEOUT"},
		{"send timeout high", func(c *config.Config) { c.SendTimeout, c.Lease = 11*time.Minute, time.Hour }, "RELAY_SEND_TIMEOUT"},
		{"lease low", func(c *config.Config) { c.Lease = 500 * time.Millisecond }, "RELAY_LEASE"},
		{"lease high", func(c *config.Config) { c.Lease = 25 * time.Hour }, "RELAY_LEASE"},
		{"lease < send timeout + 10s", func(c *config.Config) { c.SendTimeout, c.Lease = 20*time.Second, 30*time.Second-time.Nanosecond }, "RELAY_LEASE=29.999999999s must exceed RELAY_SEND_TIMEOUT=20s"},
		{"lease < send timeout", func(c *config.Config) { c.SendTimeout, c.Lease = time.Minute, 30*time.Second }, "must exceed RELAY_SEND_TIMEOUT"},
		{"attempts 0", func(c *config.Config) { c.MaxAttempts = 0 }, "RELAY_MAX_ATTEMPTS"},
		{"attempts high", func(c *config.Config) { c.MaxAttempts = 1001 }, "RELAY_MAX_ATTEMPTS"},
		{"backoff base 0", func(c *config.Config) { c.BackoffBase = 0 }, "RELAY_BACKOFF_BASE"},
		{"backoff base high", func(c *config.Config) { c.BackoffBase, c.BackoffMax = 2*time.Hour, 3*time.Hour }, "RELAY_BACKOFF_BASE"},
		{"backoff max < base", func(c *config.Config) { c.BackoffBase, c.BackoffMax = time.Minute, time.Second }, "RELAY_BACKOFF_MAX"},
		{"backoff max high", func(c *config.Config) { c.BackoffMax = 8 * 24 * time.Hour }, "RELAY_BACKOFF_MAX"},
		{"retry-after cap 0", func(c *config.Config) { c.MaxRetryAfter = 0 }, "RELAY_MAX_RETRY_AFTER"},
		{"retry-after cap high", func(c *config.Config) { c.MaxRetryAfter = 8 * 24 * time.Hour }, "RELAY_MAX_RETRY_AFTER"},
		{"grace negative", func(c *config.Config) { c.ShutdownGrace = -time.Second }, "RELAY_SHUTDOWN_GRACE"},
		{"grace high", func(c *config.Config) { c.ShutdownGrace = 2 * time.Hour }, "RELAY_SHUTDOWN_GRACE"},
		{"payload low", func(c *config.Config) { c.MaxPayloadBytes = 1023 }, "RELAY_MAX_PAYLOAD_BYTES"},
		{"payload high", func(c *config.Config) { c.MaxPayloadBytes = 64<<20 + 1 }, "RELAY_MAX_PAYLOAD_BYTES"},
		{"rate negative", func(c *config.Config) { c.RateLimit = -1 }, "RELAY_RATE_LIMIT"},
		{"rate NaN", func(c *config.Config) { c.RateLimit = math.NaN() }, "RELAY_RATE_LIMIT"},
		{"rate +Inf", func(c *config.Config) { c.RateLimit = math.Inf(1) }, "RELAY_RATE_LIMIT"},
		{"token ttl low", func(c *config.Config) { c.TokenTTL = 9 * time.Minute }, "RELAY_TOKEN_TTL"},
		{"token ttl high", func(c *config.Config) { c.TokenTTL = 25 * time.Hour }, "RELAY_TOKEN_TTL"},
		{"project missing", func(c *config.Config) { c.ProjectID = "" }, "PARAGON_PROJECT_ID is required"},
		{"project blank", func(c *config.Config) { c.ProjectID = "  " }, "PARAGON_PROJECT_ID is required"},
		{"project with slash", func(c *config.Config) { c.ProjectID = "a/b" }, "PARAGON_PROJECT_ID"},
		{"project with percent", func(c *config.Config) { c.ProjectID = "a%2F" }, "PARAGON_PROJECT_ID"},
		{"no key", func(c *config.Config) { c.SigningKeyPEM = "" }, "PARAGON_SIGNING_KEY or PARAGON_SIGNING_KEY_FILE is required"},
		{"both keys", func(c *config.Config) { c.SigningKeyFile = "/k.pem" }, "only one of PARAGON_SIGNING_KEY and PARAGON_SIGNING_KEY_FILE"},
		{"base url ftp", func(c *config.Config) { c.BaseURL = "ftp://x" }, "PARAGON_BASE_URL"},
		{"base url not a url", func(c *config.Config) { c.BaseURL = "not a url" }, "PARAGON_BASE_URL"},
		{"base url empty", func(c *config.Config) { c.BaseURL = "" }, "PARAGON_BASE_URL"},
		{"base url no host", func(c *config.Config) { c.BaseURL = "https://" }, "PARAGON_BASE_URL"},
		{"base url with query", func(c *config.Config) { c.BaseURL = "https://zeus.example.com?x=1" }, "PARAGON_BASE_URL"},
		{"base url with fragment", func(c *config.Config) { c.BaseURL = "https://zeus.example.com#x" }, "PARAGON_BASE_URL"},
		{"log format", func(c *config.Config) { c.LogFormat = "xml" }, "LOG_FORMAT"},
		{"log format empty", func(c *config.Config) { c.LogFormat = "" }, "LOG_FORMAT"},
		{"log level", func(c *config.Config) { c.LogLevel = "trace" }, "LOG_LEVEL"},
		{"database url empty", func(c *config.Config) { c.DatabaseURL = " " }, "DATABASE_URL"},
		{"database url garbage", func(c *config.Config) { c.DatabaseURL = "mysql://x" }, "DATABASE_URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.mod(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error does not contain %q:\n%v", tc.want, err)
			}
			// Typed: *FieldErrors, all for the first variable the message names.
			errs := fieldErrors(t, err)
			variable := regexp.MustCompile(`[A-Z][A-Z_]{3,}`).FindString(tc.want)
			if tc.name == "lease < send timeout" {
				variable = "RELAY_LEASE" // the message names the other one
			}
			for _, fe := range errs {
				if fe.Var != variable {
					t.Fatalf("error for %s (%v), want only %s", fe.Var, fe, variable)
				}
			}
		})
	}
}

func TestValidateReportsAllAtOnce(t *testing.T) {
	c := validConfig()
	c.ProjectID = ""
	c.Concurrency = 0
	c.LogLevel = "loud"
	c.BaseURL = "ftp://x"
	err := c.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, v := range []string{"PARAGON_PROJECT_ID", "RELAY_CONCURRENCY", "LOG_LEVEL", "PARAGON_BASE_URL"} {
		if !strings.Contains(err.Error(), v) {
			t.Errorf("%s not reported:\n%v", v, err)
		}
	}
}

func TestValidateDatabaseURLNeverShowsPassword(t *testing.T) {
	const pw = "hunter2-s3cret"
	for _, dsn := range []string{
		"postgres://alice:" + pw + "@db.example.com:notaport/app",
		"postgres://alice:" + pw + "@db.example.com:5432/app?sslmode=bogus",
		"host=db user=alice password=" + pw + " port=notaport",
		"host=db password='" + pw + "' sslmode=bogus",
	} {
		c := validConfig()
		c.DatabaseURL = dsn
		for name, err := range map[string]error{"Validate": c.Validate(), "ValidateDatabase": c.ValidateDatabase()} {
			if err == nil {
				t.Errorf("%s accepted %q", name, dsn)
				continue
			}
			if !strings.Contains(err.Error(), "DATABASE_URL") {
				t.Errorf("%s: error does not name DATABASE_URL: %v", name, err)
			}
			if strings.Contains(err.Error(), pw) || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("%s: error shows the password: %v", name, err)
			}
		}
		if s := c.String(); strings.Contains(s, "hunter2") {
			t.Errorf("String() shows the password of %q: %s", dsn, s)
		}
	}
}

func TestStringRedactsPasswordsPgxAccepts(t *testing.T) {
	// pgx reads URIs the way libpq does: the password runs from the first
	// ':' to the first '@', so it may hold '#', '?' or ':' unescaped.
	const pw = "hunter2#s?e:cret"
	for _, dsn := range []string{
		"postgres://alice:" + pw + "@db.example.com/app",
		"postgres://db.example.com/app?user=alice&password=" + pw,
		"host=db user=alice password='" + pw + "'",
	} {
		c := validConfig()
		c.DatabaseURL = dsn
		if err := c.Validate(); err != nil {
			t.Errorf("Validate(%q): %v", dsn, err)
		}
		if s := c.String(); strings.Contains(s, "hunter2") || strings.Contains(s, "cret") {
			t.Errorf("String() shows the password of %q: %s", dsn, s)
		}
	}
}

func TestLoadKey(t *testing.T) {
	p := keyPEM(t)
	key := testKey()
	writeKey := func(t *testing.T, text string, mode os.FileMode) string {
		t.Helper()
		path := filepath.Join(t.TempDir(), "paragon.pem")
		if err := os.WriteFile(path, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil { // the umask may have narrowed it
			t.Fatal(err)
		}
		return path
	}

	t.Run("from env PEM", func(t *testing.T) {
		c := config.Config{SigningKeyPEM: p}
		k, warn, err := c.LoadKey()
		if err != nil || warn != "" || !k.Equal(key) {
			t.Fatalf("LoadKey = %v, %q, %v", k != nil, warn, err)
		}
	})
	t.Run("from env one line with literal \\n", func(t *testing.T) {
		c, err := config.FromEnv(envMap(map[string]string{"PARAGON_SIGNING_KEY": `"` + strings.ReplaceAll(p, "\n", `\n`) + `"`}))
		if err != nil {
			t.Fatal(err)
		}
		k, _, err := c.LoadKey()
		if err != nil || !k.Equal(key) {
			t.Fatalf("LoadKey: %v", err)
		}
	})
	t.Run("file 0600", func(t *testing.T) {
		c := config.Config{SigningKeyFile: writeKey(t, p, 0o600)}
		k, warn, err := c.LoadKey()
		if err != nil || !k.Equal(key) {
			t.Fatalf("LoadKey: %v", err)
		}
		if warn != "" {
			t.Fatalf("warning for a 0600 file: %s", warn)
		}
	})
	for _, mode := range []os.FileMode{0o400, 0o440, 0o640} { // group access: Kubernetes fsGroup mounts
		t.Run(fmt.Sprintf("file %04o", mode), func(t *testing.T) {
			c := config.Config{SigningKeyFile: writeKey(t, p, mode)}
			if _, warn, err := c.LoadKey(); err != nil || warn != "" {
				t.Fatalf("LoadKey = %q, %v", warn, err)
			}
		})
	}
	for _, mode := range []os.FileMode{0o644, 0o604, 0o606} {
		t.Run(fmt.Sprintf("file %04o warns", mode), func(t *testing.T) {
			path := writeKey(t, p, mode)
			c := config.Config{SigningKeyFile: path}
			k, warn, err := c.LoadKey()
			if err != nil || !k.Equal(key) {
				t.Fatalf("LoadKey: %v", err)
			}
			if warn == "" || !strings.Contains(string(warn), path) || !strings.Contains(string(warn), "chmod 600") {
				t.Fatalf("warning = %q", warn)
			}
			assertNoKeyText(t, string(warn), p)
		})
	}
	t.Run("both set is refused", func(t *testing.T) {
		c := config.Config{SigningKeyPEM: "garbage", SigningKeyFile: writeKey(t, p, 0o600)}
		if _, _, err := c.LoadKey(); err == nil || !strings.Contains(err.Error(), "set only one of PARAGON_SIGNING_KEY and PARAGON_SIGNING_KEY_FILE") {
			t.Fatalf("LoadKey with both set: %v", err)
		}
	})
	t.Run("file missing", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "nope.pem")
		c := config.Config{SigningKeyFile: path}
		k, _, err := c.LoadKey()
		if err == nil || k != nil {
			t.Fatal("no error")
		}
		if !strings.Contains(err.Error(), "PARAGON_SIGNING_KEY_FILE") || !strings.Contains(err.Error(), path) {
			t.Fatalf("error = %v", err)
		}
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("error %v does not wrap os.ErrNotExist", err)
		}
	})
	t.Run("file is a directory", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Chmod(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		c := config.Config{SigningKeyFile: dir}
		if _, _, err := c.LoadKey(); err == nil || !strings.Contains(err.Error(), "PARAGON_SIGNING_KEY_FILE") {
			t.Fatalf("error = %v", err)
		}
	})

	// A truncated real key: the text is key material, the error must not be.
	lines := strings.Split(strings.TrimSuffix(p, "\n"), "\n")
	truncated := strings.Join(lines[:len(lines)/2], "\n") + "\n" + lines[len(lines)-1] + "\n"
	for _, tc := range []struct {
		name, variable string
		cfg            func(t *testing.T) config.Config
	}{
		{"bad env key", "PARAGON_SIGNING_KEY", func(t *testing.T) config.Config { return config.Config{SigningKeyPEM: truncated} }},
		{"bad env key, no frame", "PARAGON_SIGNING_KEY", func(t *testing.T) config.Config {
			return config.Config{SigningKeyPEM: strings.Join(lines[1:len(lines)-1], "\n")}
		}},
		{"empty env key", "PARAGON_SIGNING_KEY", func(t *testing.T) config.Config { return config.Config{} }},
		{"bad key file", "PARAGON_SIGNING_KEY_FILE", func(t *testing.T) config.Config {
			return config.Config{SigningKeyFile: writeKey(t, truncated, 0o600)}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.cfg(t)
			k, warn, err := c.LoadKey()
			if err == nil || k != nil || warn != "" {
				t.Fatalf("LoadKey = %v, %q, %v", k != nil, warn, err)
			}
			if !strings.HasPrefix(err.Error(), tc.variable+": ") {
				t.Fatalf("error does not start with %s: %v", tc.variable, err)
			}
			if !errors.Is(err, paragon.ErrBadSigningKey) {
				t.Fatalf("error %v does not wrap paragon.ErrBadSigningKey", err)
			}
			assertNoKeyText(t, err.Error(), p)
		})
	}
}

func TestStringRedacts(t *testing.T) {
	p := keyPEM(t)
	c := validConfig()
	c.SigningKeyPEM = p
	c.DatabaseURL = "postgres://relay:hunter2@db.internal:5432/outbox?sslmode=require"
	for _, s := range []string{c.String(), fmt.Sprint(c), fmt.Sprintf("%v", &c), fmt.Sprintf("%+v", c), fmt.Sprint(c.String())} {
		assertNoKeyText(t, s, p)
		if strings.Contains(s, "BEGIN") || strings.Contains(s, "hunter2") {
			t.Fatalf("String leaks: %s", s)
		}
		for _, want := range []string{"SigningKeyPEM:<redacted>", "relay:xxxxx@db.internal:5432/outbox", "ProjectID:proj-1", "Concurrency:64"} {
			if !strings.Contains(s, want) {
				t.Errorf("String lacks %q: %s", want, s)
			}
		}
	}
	// The receiver is not modified.
	if c.SigningKeyPEM != p || !strings.Contains(c.DatabaseURL, "hunter2") {
		t.Fatal("String modified the config")
	}
	// No key: nothing to redact, and it says so.
	c.SigningKeyPEM = ""
	if s := c.String(); !strings.Contains(s, "SigningKeyPEM: ") || strings.Contains(s, "<redacted>") {
		t.Errorf("String without a key: %s", s)
	}
}

func TestRedactURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"postgres://alice:hunter2@db:5432/app?sslmode=disable", "postgres://alice:xxxxx@db:5432/app?sslmode=disable"},
		{"postgresql://alice:p%40ss%2Fw@db/app", "postgresql://alice:xxxxx@db/app"},
		{"postgres://alice:@db/app", "postgres://alice:xxxxx@db/app"},
		{"postgres://alice@db/app", "postgres://alice@db/app"},
		{"postgres://db/app", "postgres://db/app"},
		{config.DefaultDatabaseURL, config.DefaultDatabaseURL},
		// Password in the query string (libpq accepts it there too).
		{"postgres://db/app?user=alice&password=hunter2&sslmode=require", "postgres://db/app?user=alice&password=xxxxx&sslmode=require"},
		{"postgres://db/app?sslpassword=hunter2", "postgres://db/app?sslpassword=xxxxx"},
		// URLs net/url refuses: the password must still go.
		{"postgres://alice:hunter2@db:notaport/app", "postgres://alice:xxxxx@db:notaport/app"},
		{"postgres://alice:hun#ter2@db/app", "postgres://alice:xxxxx@db/app"},
		{"postgres://alice:hun ter2@db/app", "postgres://alice:xxxxx@db/app"},
		{"postgres://alice:hun?ter2@db/app", "postgres://alice:xxxxx@db/app"},
		{"postgres://alice:hun@ter2@db/app", "postgres://alice:xxxxx@db/app"},
		{"postgres://alice:hun/ter2@db/app", "postgres://alice:xxxxx@db/app"},
		{"postgres://alice:hun:ter2@db/app", "postgres://alice:xxxxx@db/app"},
		{"postgres://user%40server:hunter2@db/app", "postgres://user%40server:xxxxx@db/app"},
		// No userinfo: nothing is masked, even with '@' or ':' elsewhere.
		{"postgres://db:5432/app?user=alice@corp&sslmode=require", "postgres://db:5432/app?user=alice@corp&sslmode=require"},
		{"postgresql://h1:5432,h2:5433/app?target_session_attrs=read-write", "postgresql://h1:5432,h2:5433/app?target_session_attrs=read-write"},
		{"postgres://db/app?password=hunter2#frag", "postgres://db/app?password=xxxxx"},
		// key=value form.
		{"host=db user=alice password=hunter2 dbname=app", "host=db user=alice password=xxxxx dbname=app"},
		{"password=hunter2", "password=xxxxx"},
		{"host=db password='hunter 2' dbname=app", "host=db password=xxxxx dbname=app"},
		{`host=db password='it\'s hunter2' dbname=app`, "host=db password=xxxxx dbname=app"},
		{"host=db password = hunter2 dbname=app", "host=db password=xxxxx dbname=app"},
		{"host=db password='unterminated hunter2", "host=db password=xxxxx"},
		{"host=db\tpassword=hunter2\nport=5432", "host=db\tpassword=xxxxx\nport=5432"},
		{"host=db sslpassword=hunter2", "host=db sslpassword=xxxxx"},
		{"host=db user=alice", "host=db user=alice"},
		{"host=db password=a://hunter2 port=5432", "host=db password=xxxxx port=5432"},
		{"host=db PASSWORD=hunter2", "host=db PASSWORD=xxxxx"},
		{"host=db password=", "host=db password=xxxxx"},
		// A backslash-escaped space does not end a key=value password.
		{`host=db password=hunter\ 2x dbname=app`, "host=db password=xxxxx dbname=app"},
		{`host=db password=hunter\\ dbname=app`, "host=db password=xxxxx dbname=app"},
		{`password=hunter2\`, "password=xxxxx"},
		// An unescaped '@' in a URL password: the userinfo ends at the last '@'.
		{"postgres://relay:Hunter2@hunter2@127.0.0.1:5432/app?sslmode=disable", "postgres://relay:xxxxx@127.0.0.1:5432/app?sslmode=disable"},
		{"postgres://relay:hunter2@db1:5432,db2:5433/app", "postgres://relay:xxxxx@db1:5432,db2:5433/app"},
	} {
		got := config.RedactURL(tc.in)
		if got != tc.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if strings.Contains(got, "hunter") || strings.Contains(got, "ter2") {
			t.Errorf("RedactURL(%q) = %q shows the password", tc.in, got)
		}
	}
}

// TestRedactText: error and log text that quotes the connection string or
// fragments of its password (the driver's own messages do) comes out with
// every fragment masked, for both forms of connection string.
func TestRedactText(t *testing.T) {
	for _, tc := range []struct {
		name, conn, text string
		secrets          []string // none may remain
		keep             []string // what must remain
	}{
		{"unescaped @ in a URL password: pgx's lookup error",
			"postgres://relay:Hunter2@Secret@127.0.0.1:5432/app?sslmode=disable",
			"failed to connect to `user=relay database=app`: hostname resolving error: lookup Secret@127.0.0.1: no such host",
			[]string{"Hunter2", "Secret"}, []string{"lookup xxxxx@127.0.0.1: no such host", "user=relay"}},
		{"key=value with a backslash-escaped space",
			`host=127.0.0.1 user=relay password=WrongTw\ oPart dbname=app`,
			`cannot parse "host=127.0.0.1 user=relay password=WrongTw\ oPart dbname=app": password WrongTw oPart; near oPart`,
			[]string{"WrongTw", "oPart"}, []string{"host=127.0.0.1", "dbname=app"}},
		{"plain URL echoed whole",
			"postgres://alice:hunter2@db:5432/app",
			"dial postgres://alice:hunter2@db:5432/app: refused (password hunter2)",
			[]string{"hunter2"}, []string{"postgres://alice:xxxxx@db:5432/app", "refused"}},
		{"percent-encoded @",
			"postgres://alice:Hunter2%40Secret@db/app",
			"auth failed for Hunter2@Secret and Hunter2%40Secret",
			[]string{"Hunter2", "Secret"}, []string{"auth failed for"}},
		{"?password= in the query",
			"postgres://db/app?user=alice&password=Hunter2:Secret&sslmode=disable",
			"server said: Hunter2 / Secret / Hunter2:Secret",
			[]string{"Hunter2", "Secret"}, []string{"server said"}},
		{"quoted key=value",
			"host=db user=alice password='Hunter2 it\\'s Secret' dbname=app",
			"bad password Hunter2 it's Secret, \"Hunter2\"",
			[]string{"Hunter2", "Secret"}, []string{"bad password"}},
		{"spaces around = (PGPASSWORD-like)",
			"host=db user=alice password = Hunter2x dbname=app",
			"password = Hunter2x was refused",
			[]string{"Hunter2x"}, []string{"was refused"}},
		{"multi-host URL",
			"postgres://relay:Hunter2@Secret@db1:5432,db2:5433/app",
			"lookup Secret@db1: no such host; db2: Hunter2 refused",
			[]string{"Hunter2", "Secret"}, []string{"db1", "db2"}},
		{"no password: text unchanged",
			"postgres://relay@db/app",
			"lookup db: no such host",
			nil, []string{"lookup db: no such host"}},
	} {
		got := config.RedactText(tc.text, tc.conn)
		for _, sec := range tc.secrets {
			if strings.Contains(got, sec) {
				t.Errorf("%s: %q shows %q", tc.name, got, sec)
			}
		}
		for _, k := range tc.keep {
			if !strings.Contains(got, k) {
				t.Errorf("%s: %q lost %q", tc.name, got, k)
			}
		}
		if r := config.RedactURL(tc.conn); strings.Contains(r, "Hunter2") || strings.Contains(r, "Secret") || strings.Contains(r, "oPart") {
			t.Errorf("%s: RedactURL = %q", tc.name, r)
		}
	}
	// RedactError keeps the chain for errors.Is and masks the message.
	cause := errors.New("lookup Secret@127.0.0.1: no such host")
	err := config.RedactError(fmt.Errorf("DATABASE_URL: %w", cause), "postgres://relay:Hunter2@Secret@127.0.0.1/app")
	if !errors.Is(err, cause) || strings.Contains(err.Error(), "Secret") {
		t.Errorf("RedactError: %q (errors.Is %v)", err, errors.Is(err, cause))
	}
	if config.RedactError(nil, "x") != nil {
		t.Error("RedactError(nil) is not nil")
	}
}

func TestBindFlags(t *testing.T) {
	c, err := config.FromEnv(envMap(map[string]string{
		"PARAGON_PROJECT_ID":  "env-proj",
		"RELAY_CONCURRENCY":   "8",
		"RELAY_LEASE":         "5m",
		"LOG_LEVEL":           "warn",
		"PARAGON_SIGNING_KEY": "env-key",
	}))
	if err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(new(bytes.Buffer))
	c.BindFlags(fs)
	err = fs.Parse([]string{
		"-project-id=flag-proj",
		"-concurrency", "16",
		"-poll-interval=1s",
		"-rate-limit=2.5",
		"-database-url=postgres://u:pw@flaghost/db",
		"-signing-key-file=/k.pem",
		"-base-url=https://zeus.example.com",
		"-batch-size=10",
		"-send-timeout=5s",
		"-max-attempts=3",
		"-backoff-base=2s",
		"-backoff-max=1m",
		"-max-retry-after=2m",
		"-shutdown-grace=1s",
		"-max-payload-bytes=2048",
		"-token-ttl=20m",
		"-relay-id=r1",
		"-log-format=json",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := config.Defaults()
	want.ProjectID = "flag-proj"                     // flag over env
	want.Concurrency = 16                            // flag over env
	want.Lease = 5 * time.Minute                     // env, no flag given
	want.LogLevel = "warn"                           // env, no flag given
	want.SigningKeyPEM = "env-key"                   // env only: there is no flag for it
	want.PollInterval = time.Second                  // flag over default
	want.RateLimit = 2.5                             //
	want.DatabaseURL = "postgres://u:pw@flaghost/db" // the real value, not a redacted one
	want.SigningKeyFile = "/k.pem"
	want.BaseURL = "https://zeus.example.com"
	want.BatchSize = 10
	want.SendTimeout = 5 * time.Second
	want.MaxAttempts = 3
	want.BackoffBase = 2 * time.Second
	want.BackoffMax = time.Minute
	want.MaxRetryAfter = 2 * time.Minute
	want.ShutdownGrace = time.Second
	want.MaxPayloadBytes = 2048
	want.TokenTTL = 20 * time.Minute
	want.RelayID = "r1"
	want.LogFormat = "json"
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("after flags:\n got %+v\nwant %+v", plainFields(c), plainFields(want))
	}
}

func plainFields(c config.Config) string {
	v := reflect.ValueOf(c)
	var b strings.Builder
	for i := range v.NumField() {
		fmt.Fprintf(&b, "%s=%v ", v.Type().Field(i).Name, v.Field(i).Interface())
	}
	return b.String()
}

func TestBindFlagsCoversEverySettingButTheKeyText(t *testing.T) {
	c := config.Defaults()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	c.BindFlags(fs)
	usages := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { usages[f.Name] = f.Usage })
	for _, v := range envVars(t) {
		n := 0
		for name, u := range usages {
			if strings.Contains(u, "(env "+v+")") {
				n++
				if v == "PARAGON_SIGNING_KEY" {
					t.Errorf("flag -%s takes the key text: it would show in process listings", name)
				}
			}
		}
		if v != "PARAGON_SIGNING_KEY" && n != 1 {
			t.Errorf("%d flags for %s, want 1", n, v)
		}
	}
}

func TestFlagUsageDoesNotShowDatabasePassword(t *testing.T) {
	// A mistyped flag prints the usage, defaults included, to stderr (and so
	// to the container log); the defaults come from the environment.
	c, err := config.FromEnv(envMap(map[string]string{"DATABASE_URL": "postgres://relay:hunter2@db/outbox"}))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(&out)
	c.BindFlags(fs)
	if err := fs.Parse([]string{"-no-such-flag"}); err == nil {
		t.Fatal("unknown flag accepted")
	}
	if strings.Contains(out.String(), "hunter2") {
		t.Fatalf("usage shows the password:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "-database-url") || !strings.Contains(out.String(), "relay:xxxxx@db/outbox") {
		t.Fatalf("usage lacks the (redacted) database URL:\n%s", out.String())
	}
	// Setting the flag still stores the real value.
	if err := fs.Parse([]string{"-database-url=postgres://u:pw2@h/d"}); err != nil {
		t.Fatal(err)
	}
	if c.DatabaseURL != "postgres://u:pw2@h/d" {
		t.Fatalf("DatabaseURL = %q", c.DatabaseURL)
	}
}
