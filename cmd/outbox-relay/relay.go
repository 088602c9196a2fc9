package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/paragon-outbox/outbox-relay/internal/admin"
	"github.com/paragon-outbox/outbox-relay/internal/relayrun"
)

func runRelay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, fs, err := loadConfig("relay", args, stderr, nil)
	if err != nil {
		return err
	}
	if err := noArgs("relay", fs); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	log := newLogger(cfg, stderr)
	reg := prometheus.NewRegistry()
	r, err := relayrun.New(ctx, cfg, log, relayrun.WithRegistry(reg))
	if err != nil {
		if ctx.Err() != nil {
			// SIGTERM while still waiting for the database: nothing was
			// claimed, so this is a clean stop.
			log.Info("stopped before the relay started", slog.Any("reason", err))
			return nil
		}
		return err
	}
	defer r.Close()
	if cfg.AdminAddr != "off" {
		adm := admin.New(r.Pool, reg, log)
		if _, err := adm.Start(cfg.AdminAddr); err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = adm.Stop(sctx)
		}()
		go func() { <-ctx.Done(); adm.SetShuttingDown() }()
	}
	return r.Run(ctx)
}
