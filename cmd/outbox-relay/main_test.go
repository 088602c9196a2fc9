package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/buildinfo"
	"github.com/paragon-outbox/outbox-relay/internal/config"
	"github.com/paragon-outbox/outbox-relay/internal/paragon"
	"github.com/paragon-outbox/outbox-relay/internal/paragonlocal"
	"github.com/paragon-outbox/outbox-relay/internal/pgutil"
	"github.com/paragon-outbox/outbox-relay/internal/testdb"
	"github.com/paragon-outbox/outbox-relay/internal/testutil"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// clearEnv unsets every variable the relay reads, for the test's duration.
func clearEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "PARAGON_") || strings.HasPrefix(name, "RELAY_") || name == "DATABASE_URL" || strings.HasPrefix(name, "LOG_") {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
}

func writeKey(t *testing.T) (path, pemText string) {
	t.Helper()
	_, pemBytes, err := paragonlocal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), "signing-key.pem")
	if err := os.WriteFile(path, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, string(pemBytes)
}

// TestRelayRefusesBadConfiguration: each bad setting fails at start-up with
// a message naming the variable, and no key material is ever printed.
func TestRelayRefusesBadConfiguration(t *testing.T) {
	keyPath, keyPEM := writeKey(t)
	db := testdb.New(t)
	lines := strings.Split(strings.TrimSpace(keyPEM), "\n")
	secretLine := lines[len(lines)/2]
	truncated := strings.Join(lines[:len(lines)/2], "\n") + "\n-----END PRIVATE KEY-----\n"

	cases := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"no project id", map[string]string{"PARAGON_SIGNING_KEY_FILE": keyPath}, []string{"PARAGON_PROJECT_ID is required"}},
		{"no key", map[string]string{"PARAGON_PROJECT_ID": "p1"}, []string{"PARAGON_SIGNING_KEY or PARAGON_SIGNING_KEY_FILE is required"}},
		{"garbage key", map[string]string{"PARAGON_PROJECT_ID": "p1", "PARAGON_SIGNING_KEY": "not a key " + secretLine}, []string{"PARAGON_SIGNING_KEY", "no PEM block"}},
		{"truncated key", map[string]string{"PARAGON_PROJECT_ID": "p1", "PARAGON_SIGNING_KEY": truncated}, []string{"PARAGON_SIGNING_KEY", "bad Paragon signing key"}},
		{"missing key file", map[string]string{"PARAGON_PROJECT_ID": "p1", "PARAGON_SIGNING_KEY_FILE": "/nonexistent/key.pem"}, []string{"PARAGON_SIGNING_KEY_FILE", "/nonexistent/key.pem"}},
		{"bad number", map[string]string{"PARAGON_PROJECT_ID": "p1", "PARAGON_SIGNING_KEY_FILE": keyPath, "RELAY_CONCURRENCY": "lots"}, []string{"RELAY_CONCURRENCY=\"lots\" is not a whole number"}},
		{"bad duration", map[string]string{"PARAGON_PROJECT_ID": "p1", "PARAGON_SIGNING_KEY_FILE": keyPath, "RELAY_LEASE": "5"}, []string{"RELAY_LEASE=\"5\" is not a duration"}},
		{"lease too short", map[string]string{"PARAGON_PROJECT_ID": "p1", "PARAGON_SIGNING_KEY_FILE": keyPath, "RELAY_LEASE": "5s"}, []string{"RELAY_LEASE=5s must exceed RELAY_SEND_TIMEOUT"}},
		{"bad base url", map[string]string{"PARAGON_PROJECT_ID": "p1", "PARAGON_SIGNING_KEY_FILE": keyPath, "PARAGON_BASE_URL": "api.useparagon.com"}, []string{"PARAGON_BASE_URL"}},
		{"unparsable database url", map[string]string{"PARAGON_PROJECT_ID": "p1", "PARAGON_SIGNING_KEY_FILE": keyPath, "DATABASE_URL": "postgres://u:s3cretpw@host:notaport/db"}, []string{"DATABASE_URL does not parse"}},
		{"dead database", map[string]string{"PARAGON_PROJECT_ID": "p1", "PARAGON_SIGNING_KEY_FILE": keyPath, "DATABASE_URL": "postgres://u:s3cretpw@127.0.0.1:1/db?connect_timeout=2", "RELAY_STARTUP_TIMEOUT": "1s"}, []string{"cannot reach the database at DATABASE_URL"}},
		{"unmigrated database", map[string]string{"PARAGON_PROJECT_ID": "p1", "PARAGON_SIGNING_KEY_FILE": keyPath, "DATABASE_URL": emptyDatabase(t)}, []string{"migrate up"}},
	}
	_ = db
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			code, stdout, stderr := runCmd(t, "relay")
			if code == 0 {
				t.Fatalf("relay started with bad configuration; stderr: %s", stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q does not contain %q", stderr, w)
				}
			}
			all := stdout + stderr
			for _, l := range lines[1 : len(lines)-1] {
				if strings.Contains(all, l) {
					t.Fatalf("output contains key material")
				}
			}
			if strings.Contains(all, "s3cretpw") {
				t.Fatalf("output contains the database password: %s", all)
			}
		})
	}
}

// emptyDatabase returns the URL of a database with no schema.
func emptyDatabase(t *testing.T) string {
	t.Helper()
	return testdb.NewEmpty(t).URL
}

func TestUnknownCommandAndUsage(t *testing.T) {
	if code, _, stderr := runCmd(t, "frobnicate"); code != 2 || !strings.Contains(stderr, `unknown command "frobnicate"`) {
		t.Fatalf("code %d, stderr %q", code, stderr)
	}
	if code, stdout, _ := runCmd(t, "help"); code != 0 || !strings.Contains(stdout, "relay") {
		t.Fatalf("help: code %d, %q", code, stdout)
	}
	if code, _, stderr := runCmd(t, "relay", "-no-such-flag"); code != 2 || !strings.Contains(stderr, "no-such-flag") {
		t.Fatalf("bad flag: code %d, %q", code, stderr)
	}
}

// TestDemoDeliversTheSampleLeads runs the README's quick-start demo against
// a fresh database: 100 leads loaded through SQL, all delivered, status shown.
func TestDemoDeliversTheSampleLeads(t *testing.T) {
	clearEnv(t)
	db := testdb.New(t)
	t.Setenv("DATABASE_URL", db.URL)
	demoDB := db.Name + "_demo"
	t.Cleanup(func() { _ = pgutil.Drop(context.Background(), db.URL, demoDB) })
	code, stdout, stderr := runCmd(t, "demo", "-leads", "../../testdata/leads-sample.csv", "-db", demoDB)
	if code != 0 {
		t.Fatalf("demo failed (%d):\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"Loaded 100 leads", "100 delivered, 0 dead", "the endpoint accepted 100 App Events"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, stdout)
		}
	}
	// The status table's delivered row, counted exactly.
	if !regexp.MustCompile(`(?m)^\s+delivered\s+100$`).MatchString(stdout) {
		t.Errorf("demo output lacks the status line \"delivered  100\":\n%s", stdout)
	}
	demoURL, err := pgutil.WithDatabase(db.URL, demoDB)
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runCmd(t, "status", "-json", "-database-url", demoURL)
	if code != 0 {
		t.Fatalf("status: %d %s", code, stderr)
	}
	var rep struct {
		Counts map[string]int64 `json:"counts"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("status -json: %v\n%s", err, stdout)
	}
	if rep.Counts["delivered"] != 100 || rep.Counts["pending"] != 0 || rep.Counts["dead"] != 0 {
		t.Fatalf("status counts %v", rep.Counts)
	}
}

// TestMigrateUpFromManyReplicasAtOnce: every sidecar runs `migrate up` at
// start; goose's session locker serialises them and all succeed.
func TestMigrateUpFromManyReplicasAtOnce(t *testing.T) {
	clearEnv(t)
	t.Setenv("DATABASE_URL", emptyDatabase(t))
	const replicas = 4
	codes := make(chan string, replicas)
	for range replicas {
		go func() {
			var out, errb bytes.Buffer
			code := run(context.Background(), []string{"migrate", "up"}, &out, &errb)
			codes <- strings.TrimSpace(out.String()+errb.String()) + map[bool]string{true: "", false: " [FAILED]"}[code == 0]
		}()
	}
	for range replicas {
		if r := <-codes; strings.Contains(r, "[FAILED]") {
			t.Errorf("a replica failed: %s", r)
		}
	}
	code, stdout, stderr := runCmd(t, "migrate", "status")
	if code != 0 || !strings.Contains(stdout, "applied") || strings.Contains(stdout, "pending") {
		t.Fatalf("migrate status: %d %s %s", code, stdout, stderr)
	}
}

// TestRelayStoppedWhileWaitingForTheDatabaseExitsZero: a sidecar told to
// stop while it still waits for its database has claimed nothing; that is
// a clean stop, not a failure.
func TestRelayStoppedWhileWaitingForTheDatabaseExitsZero(t *testing.T) {
	clearEnv(t)
	keyPath, _ := writeKey(t)
	t.Setenv("PARAGON_PROJECT_ID", "p1")
	t.Setenv("PARAGON_SIGNING_KEY_FILE", keyPath)
	t.Setenv("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none?connect_timeout=1")
	t.Setenv("RELAY_ADMIN_ADDR", "off")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var out, errb testutil.SyncBuffer
	go func() { done <- run(ctx, []string{"relay"}, &out, &errb) }()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(errb.String(), "database not reachable yet") {
		if time.Now().After(deadline) {
			t.Fatal("relay never reported waiting for the database")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d after SIGTERM while waiting; stderr: %s", code, errb.String())
	}
}

// TestParagonLocalCommand: the standalone endpoint verifies tokens against
// the signing key's public half and rejects matching events as told.
func TestParagonLocalCommand(t *testing.T) {
	clearEnv(t)
	keyPath, keyPEM := writeKey(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var out, errb testutil.SyncBuffer
	go func() {
		done <- run(ctx, []string{"paragon-local", "-addr", addr, "-project-id", "p1", "-signing-key-file", keyPath,
			"-reject-match", "poison", "-reject-status", "422"}, &out, &errb)
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("paragon-local exit %d: %s", code, errb.String())
		}
	}()
	key, err := paragon.ParseSigningKey(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	tokens, _ := paragon.NewTokens(paragon.TokensConfig{Key: key, ProjectID: "p1"})
	client, err := paragon.NewClient(paragon.ClientConfig{BaseURL: "http://" + addr, ProjectID: "p1", Tokens: tokens, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	send := func(payload string) paragon.Result {
		var res paragon.Result
		for range 100 { // the server may still be starting
			res = client.Send(context.Background(), paragon.Event{Name: "Lead Created", UserID: "u1", Payload: []byte(payload)})
			if res.Status != 0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		return res
	}
	if res := send(`{"title":"fine"}`); res.Outcome != paragon.Delivered || res.Status != 201 {
		t.Fatalf("good event: %+v", res)
	}
	// The error says what matched, not an internal name.
	if res := send(`{"title":"poison"}`); res.Outcome != paragon.Rejected || res.Status != 422 ||
		res.Err == nil || !strings.Contains(res.Err.Error(), `rejected: payload matches -reject-match \"poison\"`) || strings.Contains(res.Err.Error(), "RejectFunc") {
		t.Fatalf("matching event: %+v", res)
	}
}

// TestOperatorCommandsOnAnUnmigratedDatabase say to migrate, not "relation
// does not exist".
func TestOperatorCommandsOnAnUnmigratedDatabase(t *testing.T) {
	clearEnv(t)
	t.Setenv("DATABASE_URL", emptyDatabase(t))
	for _, args := range [][]string{{"status"}, {"inspect", "1"}, {"retry", "-all", "-dry-run"}, {"purge", "-dry-run"}} {
		code, _, stderr := runCmd(t, args...)
		if code != 1 || !strings.Contains(stderr, "run `outbox-relay migrate up`") {
			t.Errorf("%v: code %d, stderr %q", args, code, stderr)
		}
	}
}

// TestFlagsAfterTheArguments: flags may follow a command's arguments
// (`migrate up -database-url URL`, `inspect 8 -json -database-url URL`),
// and `migrate -h` lists its actions.
func TestFlagsAfterTheArguments(t *testing.T) {
	clearEnv(t)
	db := testdb.NewEmpty(t)
	code, stdout, stderr := runCmd(t, "migrate", "up", "-database-url", db.URL)
	if code != 0 || !strings.Contains(stdout, "migrations applied") {
		t.Fatalf("migrate up -database-url: %d %s %s", code, stdout, stderr)
	}
	code, stdout, stderr = runCmd(t, "migrate", "status", "-database-url="+db.URL)
	if code != 0 || !strings.Contains(stdout, "applied") || strings.Contains(stdout, "pending") {
		t.Fatalf("migrate status -database-url: %d %s %s", code, stdout, stderr)
	}
	var id int64
	if _, err := db.Pool.Exec(context.Background(), `INSERT INTO leads (owner_id, last_name) VALUES ('usr_f', 'F')`); err != nil {
		t.Fatal(err)
	}
	if err := db.Pool.QueryRow(context.Background(), `SELECT max(id) FROM outbox`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runCmd(t, "inspect", strconv.FormatInt(id, 10), "-json", "-database-url", db.URL)
	if code != 0 || !strings.Contains(stdout, `"event_name": "Lead Created"`) {
		t.Fatalf("inspect <id> -json -database-url: %d %s %s", code, stdout, stderr)
	}
	for _, args := range [][]string{{"migrate", "up", "down", "-database-url", db.URL}, {"migrate", "sideways", "-database-url", db.URL}} {
		if code, _, stderr := runCmd(t, args...); code != 2 || !strings.Contains(stderr, "usage") {
			t.Errorf("%q: %d %s", args, code, stderr)
		}
	}
	code, _, stderr = runCmd(t, "migrate", "-h")
	for _, w := range []string{"\n  up ", "\n  down ", "\n  status ", "-database-url"} {
		if code != 0 || !strings.Contains(stderr, w) {
			t.Errorf("migrate -h (%d) lacks %q:\n%s", code, w, stderr)
		}
	}
	if !strings.Contains(stderr, "outbox-relay migrate [up|down|status]") {
		t.Errorf("migrate -h:\n%s", stderr)
	}
}

// TestUnmigratedDatabaseIsNamed: a command on a database without the schema
// says which database (host:port/dbname, no password) and where it came
// from; commands taking no arguments refuse extras with a usage error.
func TestUnmigratedDatabaseIsNamed(t *testing.T) {
	clearEnv(t)
	db := testdb.NewEmpty(t)
	u, err := url.Parse(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), "s3cret-pw")
	t.Setenv("DATABASE_URL", u.String())
	code, stdout, stderr := runCmd(t, "status")
	want := fmt.Sprintf("database %s/%s (from DATABASE_URL or -database-url", u.Host, strings.TrimPrefix(u.Path, "/"))
	if code != 1 || stdout != "" || !strings.Contains(stderr, "run `outbox-relay migrate up`") || !strings.Contains(stderr, want) || strings.Contains(stderr, "s3cret-pw") {
		t.Errorf("status on an unmigrated database: %d, want stderr with %q:\n%s", code, want, stderr)
	}
	for _, args := range [][]string{{"status", "foo"}, {"status", "-json", "foo"}, {"relay", "foo"}, {"token", "-sub", "u", "foo"}, {"demo", "foo"}, {"paragon-local", "foo"}} {
		if code, _, stderr := runCmd(t, args...); code != 2 || !strings.Contains(stderr, "takes no arguments") {
			t.Errorf("%q: %d %s", args, code, stderr)
		}
	}
}

// TestVersionCommand: `version` and `-version` print the build's version
// line; -json the same fields; extra arguments are refused.
func TestVersionCommand(t *testing.T) {
	want := "outbox-relay " + buildinfo.Read().String() + "\n"
	for _, args := range [][]string{{"version"}, {"-version"}, {"--version"}} {
		if code, stdout, stderr := runCmd(t, args...); code != 0 || stdout != want || !strings.Contains(stdout, "revision ") {
			t.Errorf("%q: %d %q %q, want %q", args, code, stdout, stderr, want)
		}
	}
	code, stdout, _ := runCmd(t, "version", "-json")
	var in buildinfo.Info
	if err := json.Unmarshal([]byte(stdout), &in); code != 0 || err != nil || in != buildinfo.Read() {
		t.Errorf("version -json: %d %v %q", code, err, stdout)
	}
	if code, _, _ := runCmd(t, "version", "x"); code != 2 {
		t.Errorf("version x: %d, want 2", code)
	}
	if _, stdout, _ := runCmd(t, "help"); !strings.Contains(stdout, "\n  version ") {
		t.Errorf("help does not list version:\n%s", stdout)
	}
}

// TestPasswordFragmentsNeverPrinted: a password with an unescaped '@' makes
// pgx read its tail as the host, and the driver's error then quoted it
// ("lookup Secret@127.0.0.1: no such host"); a backslash-escaped space in a
// key=value password cut the masking short ("password=xxxxx oPart"). Neither
// part of either password may appear in the output of status or doctor.
func TestPasswordFragmentsNeverPrinted(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // a closed port: nothing answers
	for _, tc := range []struct {
		url     string
		secrets []string
	}{
		{fmt.Sprintf("postgres://relay:Hunter2@Secret@127.0.0.1:%d/app?sslmode=disable", port), []string{"Hunter2", "Secret"}},
		{"postgres://relay:Hunter2@Secret@127.0.0.1:5432/app?sslmode=disable", []string{"Hunter2", "Secret"}},
		{fmt.Sprintf(`host=127.0.0.1 port=%d user=relay password=WrongTw\ oPart dbname=app sslmode=disable`, port), []string{"WrongTw", "oPart"}},
	} {
		for _, cmd := range []string{"status", "doctor"} {
			clearEnv(t)
			t.Setenv("DATABASE_URL", tc.url)
			code, stdout, stderr := runCmd(t, cmd)
			if code == 0 {
				t.Errorf("%s with %s: exit 0", cmd, config.RedactURL(tc.url))
			}
			for _, sec := range tc.secrets {
				if strings.Contains(stdout+stderr, sec) {
					t.Errorf("%s prints %q:\n%s%s", cmd, sec, stdout, stderr)
				}
			}
			if !strings.Contains(stdout+stderr, "DATABASE_URL") && !strings.Contains(stdout+stderr, "database") {
				t.Errorf("%s: the error does not name the database:\n%s%s", cmd, stdout, stderr)
			}
		}
	}
}
