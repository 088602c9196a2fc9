package main

import (
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/config"
)

// TestCommandHelpListsOnlyItsFlags: `outbox-relay <command> -h` lists the
// flags of the settings that command uses, and no other setting's.
func TestCommandHelpListsOnlyItsFlags(t *testing.T) {
	clearEnv(t)
	for _, c := range commands() {
		if c.name == "paragon-local" || c.name == "keygen" || c.name == "version" {
			continue // their own flags, no settings
		}
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, c.name, "-h")
			if code != 0 {
				t.Fatalf("%s -h: exit %d: %s", c.name, code, stderr)
			}
			help := stdout + stderr
			for _, s := range config.Settings() {
				if s.Flag == "" {
					continue
				}
				listed := strings.Contains(help, "  -"+s.Flag+" ")
				used := false
				for _, u := range config.CommandSettings(c.name) {
					used = used || u.Env == s.Env
				}
				if listed != used {
					t.Errorf("%s -h: -%s listed %v, used %v", c.name, s.Flag, listed, used)
				}
			}
		})
	}
	_, _, stderr := runCmd(t, "inspect", "-h")
	if !strings.Contains(stderr, "-database-url") || !strings.Contains(stderr, "-json") || strings.Contains(stderr, "-concurrency") {
		t.Fatalf("inspect -h:\n%s", stderr)
	}
}

// TestOperatorCommandsStillAcceptRelayFlags: scripts that passed a relay
// flag to an operator command keep working, with a warning on stderr.
func TestOperatorCommandsStillAcceptRelayFlags(t *testing.T) {
	operatorDB(t)
	code, stdout, stderr := runCmd(t, "status", "-concurrency", "8", "-lease=5m", "-json")
	if code != 0 || !strings.HasPrefix(strings.TrimSpace(stdout), "{") {
		t.Fatalf("status with relay flags: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	for _, f := range []string{"-concurrency (RELAY_CONCURRENCY) is not a setting of outbox-relay status", "-lease (RELAY_LEASE) is not a setting of outbox-relay status"} {
		if !strings.Contains(stderr, "outbox-relay status: warning: flag "+f) {
			t.Errorf("no warning about %s:\n%s", f, stderr)
		}
	}
	// Unknown flags are refused as before.
	if code, _, stderr := runCmd(t, "status", "-no-such-flag"); code != 2 || !strings.Contains(stderr, "no-such-flag") {
		t.Fatalf("unknown flag: exit %d: %s", code, stderr)
	}
}

// TestOperatorCommandsIgnoreOtherCommandsSettings: a malformed relay
// variable does not stop inspect or status (they do not use it); a
// malformed variable they use does.
func TestOperatorCommandsIgnoreOtherCommandsSettings(t *testing.T) {
	operatorDB(t)
	t.Setenv("RELAY_LEASE", "forever")
	t.Setenv("RELAY_CONCURRENCY", "lots")
	if code, _, stderr := runCmd(t, "status", "-json"); code != 0 {
		t.Fatalf("status: exit %d: %s", code, stderr)
	}
	t.Setenv("RELAY_RETAIN_DEAD", "a month")
	if code, _, stderr := runCmd(t, "purge", "-dry-run"); code != 1 || !strings.Contains(stderr, `RELAY_RETAIN_DEAD="a month" is not a duration`) || strings.Contains(stderr, "RELAY_LEASE") {
		t.Fatalf("purge: exit %d: %s", code, stderr)
	}
}

// TestMalformedDatabaseURLNamesThePart: the newcomer's sslmode=disabled is
// reported with the part that is wrong, without the password.
func TestMalformedDatabaseURLNamesThePart(t *testing.T) {
	clearEnv(t)
	t.Setenv("DATABASE_URL", "postgres://relay:s3cretpw@127.0.0.1:5432/postgres?sslmode=disabled")
	for _, cmd := range []string{"status", "migrate"} {
		code, stdout, stderr := runCmd(t, cmd)
		if code != 1 {
			t.Fatalf("%s: exit %d: %s", cmd, code, stderr)
		}
		for _, w := range []string{"DATABASE_URL does not parse", "sslmode is invalid", "sslmode=disabled", "verify-full", "relay:xxxxx@127.0.0.1"} {
			if !strings.Contains(stderr, w) {
				t.Errorf("%s: stderr lacks %q: %s", cmd, w, stderr)
			}
		}
		if strings.Contains(stdout+stderr, "s3cretpw") {
			t.Fatalf("%s shows the password: %s", cmd, stdout+stderr)
		}
	}
}

// TestDemoDefaultsGiveWayToFlagsAndEnvironment: the demo's quick retries
// apply only where neither a flag nor the environment chose a value.
func TestDemoDefaultsGiveWayToFlagsAndEnvironment(t *testing.T) {
	for _, tc := range []struct {
		env        map[string]string
		args       []string
		base, poll time.Duration
	}{
		{nil, nil, 200 * time.Millisecond, 50 * time.Millisecond},
		{nil, []string{"-backoff-base", "3s"}, 3 * time.Second, 50 * time.Millisecond},
		{map[string]string{"RELAY_POLL_INTERVAL": "1s"}, nil, 200 * time.Millisecond, time.Second},
		{map[string]string{"RELAY_POLL_INTERVAL": "1s"}, []string{"-poll-interval=2s", "-backoff-base=4s"}, 4 * time.Second, 2 * time.Second},
	} {
		getenv := func(k string) string { return tc.env[k] }
		cfg, err := config.FromEnvFor("demo", getenv)
		if err != nil {
			t.Fatal(err)
		}
		fs := flag.NewFlagSet("demo", flag.ContinueOnError)
		if _, err := cfg.CommandFlags("demo", fs).Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		demoDefaults(&cfg, fs, getenv)
		if cfg.BackoffBase != tc.base || cfg.PollInterval != tc.poll {
			t.Errorf("env %v args %v: backoff base %s poll %s, want %s %s", tc.env, tc.args, cfg.BackoffBase, cfg.PollInterval, tc.base, tc.poll)
		}
	}
}
