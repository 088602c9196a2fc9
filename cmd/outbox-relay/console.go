package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"

	"github.com/paragon-outbox/outbox-relay/internal/console"
)

// runConsole serves the operator console (internal/console) until SIGINT or
// SIGTERM. Settings: DATABASE_URL and CONSOLE_* (README, "Console"); the
// flags override the variables.
func runConsole(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	ccfg, envErr := console.ConfigFromEnv(os.Getenv)
	var addr string
	var readOnly, hidePayloads bool
	cfg, fs, err := loadConfig("console", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&addr, "addr", "", "listen address (CONSOLE_ADDR, default "+console.AddrDefault+")")
		fs.BoolVar(&readOnly, "read-only", false, "hide and refuse re-drives (CONSOLE_READ_ONLY)")
		fs.BoolVar(&hidePayloads, "hide-payloads", false, "never read or show event payloads (CONSOLE_HIDE_PAYLOADS)")
	})
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	if envErr != nil {
		return envErr
	}
	if addr != "" {
		ccfg.Addr = addr
	}
	ccfg.ReadOnly = ccfg.ReadOnly || readOnly
	ccfg.HidePayloads = ccfg.HidePayloads || hidePayloads
	// Refuse an unsafe listener before touching the database.
	if err := ccfg.Validate(); err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	pool, err := openMigratedPool(ctx, cfg, 4)
	if err != nil {
		return err
	}
	defer pool.Close()
	srv, err := console.New(ctx, pool, console.Options{Config: ccfg, Log: log})
	if err != nil {
		return err
	}
	ro, why := srv.ReadOnly()
	return srv.ListenAndServe(ctx, func(a net.Addr) {
		scheme := "http"
		if ccfg.TLSCertFile != "" {
			scheme = "https"
		}
		attrs := []any{slog.String("url", scheme+"://"+a.String()+"/"), slog.Bool("basic_auth", ccfg.BasicAuth != "" || ccfg.BasicAuthFile != ""),
			slog.Bool("read_only", ro), slog.Bool("hide_payloads", ccfg.HidePayloads)}
		if ro {
			attrs = append(attrs, slog.String("read_only_because", why))
		}
		log.Info("console listening", attrs...)
		fmt.Fprintf(stdout, "outbox-relay console at %s://%s/\n", scheme, a.String())
	})
}
