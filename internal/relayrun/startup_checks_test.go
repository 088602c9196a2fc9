package relayrun

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/paragon-outbox/outbox-relay/internal/config"
	"github.com/paragon-outbox/outbox-relay/internal/testdb"
	"github.com/paragon-outbox/outbox-relay/internal/testutil"
)

// TestStartupChecksWaitOutALostConnection: the database goes away after the
// relay's pool is open but before its start-up checks (schema, privileges,
// payload limit) ran; the checks wait for it like an unreachable database
// instead of failing the start-up (a relay restarted during a database cut
// used to exit with "check the relay's claim statement: unexpected EOF").
func TestStartupChecksWaitOutALostConnection(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	pgCfg, err := pgx.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	upstream := net.JoinHostPort(pgCfg.Host, strconv.Itoa(int(pgCfg.Port)))
	tp := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	proxy := toxiproxy.NewProxy(tp, "postgres", "127.0.0.1:0", upstream)
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Stop)
	pool, err := pgxpool.New(ctx, strings.Replace(db.URL, upstream, proxy.Listen, 1)+"&pool_max_conns=1")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := pool.Ping(ctx); err != nil { // the pooled session, about to be cut
		t.Fatal(err)
	}

	listen := proxy.Listen
	proxy.Stop() // cuts the pooled session and refuses new ones
	back := make(chan error, 1)
	go func() {
		time.Sleep(time.Second)
		proxy.Listen = listen
		back <- proxy.Start()
	}()

	var logs testutil.SyncBuffer
	cfg := config.Config{StartupTimeout: 2 * time.Minute, MaxPayloadBytes: config.DefaultMaxPayloadBytes}
	n, err := startupChecks(ctx, cfg, pool, slog.New(slog.NewTextHandler(&logs, nil)))
	if perr := <-back; perr != nil {
		t.Fatalf("restart proxy: %v", perr)
	}
	if err != nil {
		t.Fatalf("start-up checks failed instead of waiting for the database: %v\nlog: %s", err, logs.String())
	}
	if n != config.DefaultMaxPayloadBytes {
		t.Fatalf("payload limit %d, want %d", n, config.DefaultMaxPayloadBytes)
	}
	if !strings.Contains(logs.String(), "retrying") {
		t.Fatalf("no retry logged; the cut was not seen by the checks: %s", logs.String())
	}
}

// TestStartupChecksFailAtOnceOnAPermanentError: an unmigrated database is
// not waited for: the operator must run `migrate up`.
func TestStartupChecksFailAtOnceOnAPermanentError(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `DROP TABLE outbox_settings`); err != nil {
		t.Fatal(err)
	}
	cfg := config.Config{StartupTimeout: time.Hour, MaxPayloadBytes: config.DefaultMaxPayloadBytes}
	done := make(chan error, 1)
	go func() { _, err := startupChecks(ctx, cfg, db.Pool, nil); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("start-up checks passed on a database without outbox_settings")
		}
	case <-time.After(2 * time.Minute): // generous: the point is "not the hour of StartupTimeout"
		t.Fatal("start-up checks kept retrying a permanent error")
	}
}
