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
	ccfg, warns, envErr := console.ConfigFromEnv(os.Getenv)
	cfg, fs, err := loadConfig("console", args, stderr, func(fs *flag.FlagSet) { ccfg.BindFlags(fs) })
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	if envErr != nil {
		return fmt.Errorf("configuration:\n%w", envErr)
	}
	for _, w := range warns {
		fmt.Fprintln(stderr, "warning:", w)
	}
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
