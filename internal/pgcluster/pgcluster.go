// Package pgcluster runs private, throwaway Postgres clusters for tests that
// must stop, crash, restart or fail over a server: something never done to
// the shared server a test suite runs against. Tests only.
//
// A cluster is created with the server binaries (initdb, pg_ctl,
// pg_basebackup) from PG_BINDIR or /usr/lib/postgresql/<version>/bin, in a
// temporary directory, on a free 127.0.0.1 port. When the test runs as root
// every server command runs as the `postgres` OS user (runuser), and the
// directory is owned by it. Each cluster is stopped (immediate) and its
// directory removed when the test ends, whatever happened.
package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// StopMode is how pg_ctl stops a server.
type StopMode string

// Stop modes of pg_ctl.
const (
	// Fast disconnects clients (they get 57P01 admin_shutdown) and shuts
	// down cleanly.
	Fast StopMode = "fast"
	// Immediate aborts every process without a checkpoint: a crash. The
	// next start runs crash recovery (clients connecting meanwhile get
	// 57P03 cannot_connect_now).
	Immediate StopMode = "immediate"
)

// Options shapes a new cluster. The zero value is a trust-auth cluster.
type Options struct {
	// PasswordAuth makes TCP logins of every role except postgres use
	// scram-sha-256 (postgres and replication stay trust).
	PasswordAuth bool
	// Settings are extra postgresql.conf lines, e.g. "max_connections = 40".
	Settings []string
}

// Cluster is one private Postgres server.
type Cluster struct {
	t       testing.TB
	Name    string // for logs
	Dir     string // owns data/ and the socket
	DataDir string
	Port    int
	bin     string
	asUser  bool // run server commands through runuser -u postgres
}

// BinDir returns the directory of the server binaries: PG_BINDIR, or the
// newest /usr/lib/postgresql/*/bin holding initdb.
func BinDir() (string, error) {
	if d := os.Getenv("PG_BINDIR"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(dirs) == 0 {
		return "", errors.New("pgcluster: no Postgres server binaries (set PG_BINDIR to the directory holding initdb and pg_ctl)")
	}
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) < version(dirs[j]) })
	return filepath.Dir(dirs[len(dirs)-1]), nil
}

func version(initdb string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return v
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// New creates and starts a primary. It fails the test on any error.
func New(t testing.TB, name string, opts Options) *Cluster {
	t.Helper()
	c := newEmpty(t, name)
	c.mustRun("initdb", "-D", c.DataDir, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C")
	hba := "local all all trust\nhost replication all 127.0.0.1/32 trust\nhost all postgres 127.0.0.1/32 trust\n"
	if opts.PasswordAuth {
		hba += "host all all 127.0.0.1/32 scram-sha-256\n"
	} else {
		hba += "host all all 127.0.0.1/32 trust\n"
	}
	c.writeFile(filepath.Join(c.DataDir, "pg_hba.conf"), hba)
	conf := []string{
		"listen_addresses = '127.0.0.1'",
		"port = " + strconv.Itoa(c.Port),
		"unix_socket_directories = '" + c.Dir + "'",
		"fsync = off", "full_page_writes = off",
		"shared_buffers = 16MB", "max_connections = 60",
		"wal_level = replica", "max_wal_senders = 5", "hot_standby = on",
		"wal_keep_size = '256MB'",
		"password_encryption = 'scram-sha-256'",
		"logging_collector = off", "log_min_messages = warning",
	}
	conf = append(conf, opts.Settings...)
	c.appendFile(filepath.Join(c.DataDir, "postgresql.auto.conf"), strings.Join(conf, "\n")+"\n")
	c.Start()
	return c
}

func newEmpty(t testing.TB, name string) *Cluster {
	t.Helper()
	bin, err := BinDir()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "pgcluster-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{t: t, Name: name, Dir: dir, DataDir: filepath.Join(dir, "data"), Port: port, bin: bin, asUser: os.Geteuid() == 0}
	if c.asUser {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("pgcluster: running as root needs a postgres OS user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(c.destroy)
	return c
}

// destroy stops the server however it can and removes its directory.
func (c *Cluster) destroy() {
	_ = c.run("pg_ctl", "stop", "-D", c.DataDir, "-m", "immediate", "-w", "-t", "30")
	if pid := c.postmasterPID(); pid > 0 {
		if p, err := os.FindProcess(pid); err == nil {
			_ = p.Kill()
		}
	}
	_ = os.RemoveAll(c.Dir)
}

func (c *Cluster) postmasterPID() int {
	b, err := os.ReadFile(filepath.Join(c.DataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	return pid
}

// URL is a connection string for database db as user postgres.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, db)
}

// HostPort is "127.0.0.1:<port>".
func (c *Cluster) HostPort() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port)) }

// Start starts the server and waits until it accepts connections (after
// crash recovery, if any).
func (c *Cluster) Start() {
	c.t.Helper()
	c.mustRun("pg_ctl", "start", "-D", c.DataDir, "-w", "-t", "120", "-l", filepath.Join(c.Dir, "server.log"))
}

// StartNoWait starts the server without waiting for it to accept
// connections.
func (c *Cluster) StartNoWait() {
	c.t.Helper()
	c.mustRun("pg_ctl", "start", "-D", c.DataDir, "-W", "-l", filepath.Join(c.Dir, "server.log"))
}

// Stop stops the server in mode and waits for it to be down.
func (c *Cluster) Stop(mode StopMode) {
	c.t.Helper()
	c.mustRun("pg_ctl", "stop", "-D", c.DataDir, "-m", string(mode), "-w", "-t", "120")
}

// Promote turns a standby into a primary and waits until it accepts writes.
func (c *Cluster) Promote() {
	c.t.Helper()
	c.mustRun("pg_ctl", "promote", "-D", c.DataDir, "-w", "-t", "120")
}

// Standby creates a streaming replica of c (pg_basebackup -R, so it
// connects back to c as a standby) and starts it.
func (c *Cluster) Standby(t testing.TB, name string) *Cluster {
	t.Helper()
	s := newEmpty(t, name)
	s.mustRun("pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(c.Port), "-U", "postgres", "-D", s.DataDir,
		"-R", "-X", "stream", "--no-sync", "-c", "fast")
	s.appendFile(filepath.Join(s.DataDir, "postgresql.auto.conf"),
		fmt.Sprintf("port = %d\nunix_socket_directories = '%s'\n", s.Port, s.Dir))
	s.Start()
	return s
}

// Exec runs sql on database db of the cluster as postgres.
func (c *Cluster) Exec(ctx context.Context, db, sql string, args ...any) error {
	conn, err := pgx.Connect(ctx, c.URL(db))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql, args...)
	return err
}

// MustExec is Exec that fails the test.
func (c *Cluster) MustExec(db, sql string, args ...any) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Exec(ctx, db, sql, args...); err != nil {
		c.t.Fatalf("%s: %s: %v", c.Name, sql, err)
	}
}

// WaitCaughtUp waits until standby has replayed all WAL c has written so far.
func (c *Cluster) WaitCaughtUp(ctx context.Context, standby *Cluster) error {
	pc, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return err
	}
	defer pc.Close(ctx)
	var lsn string
	if err := pc.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
		return err
	}
	sc, err := pgx.Connect(ctx, standby.URL("postgres"))
	if err != nil {
		return err
	}
	defer sc.Close(ctx)
	for {
		var done bool
		if err := sc.QueryRow(ctx, "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", lsn).Scan(&done); err != nil {
			return err
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("standby %s did not replay up to %s: %w", standby.Name, lsn, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Log returns the server log's last n bytes (for failure messages).
func (c *Cluster) Log(n int) string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, "server.log"))
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func (c *Cluster) command(name string, args ...string) *exec.Cmd {
	path := filepath.Join(c.bin, name)
	if c.asUser {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

func (c *Cluster) run(name string, args ...string) error {
	cmd := c.command(name, args...)
	cmd.Dir = c.Dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

func (c *Cluster) mustRun(name string, args ...string) {
	c.t.Helper()
	if err := c.run(name, args...); err != nil {
		c.t.Fatalf("pgcluster %s: %v\nserver log:\n%s", c.Name, err, c.Log(3000))
	}
}

// writeFile writes a file the server user can read (through the server
// user when running as root, since the data directory is 0700).
func (c *Cluster) writeFile(path, content string) {
	c.t.Helper()
	c.putFile(path, content, false)
}

func (c *Cluster) appendFile(path, content string) {
	c.t.Helper()
	c.putFile(path, content, true)
}

func (c *Cluster) putFile(path, content string, appendTo bool) {
	c.t.Helper()
	var cmd *exec.Cmd
	op := ">"
	if appendTo {
		op = ">>"
	}
	script := "cat " + op + " '" + path + "'"
	if c.asUser {
		cmd = exec.Command("runuser", "-u", "postgres", "--", "sh", "-c", script)
	} else {
		cmd = exec.Command("sh", "-c", script)
	}
	cmd.Stdin = strings.NewReader(content)
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("pgcluster: write %s: %v %s", path, err, out)
	}
}
