package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/paragon"
)

func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var sub string
	cfg, fs, err := loadConfig("token", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&sub, "sub", "", "the Connected User id (the token's sub); required")
	})
	if err != nil {
		return err
	}
	if err := noArgs("token", fs); err != nil {
		return err
	}
	if sub == "" {
		return fmt.Errorf("%w: -sub is required", errUsage)
	}
	if cfg.ProjectID == "" {
		return errors.New("PARAGON_PROJECT_ID is required (the token's aud names the project)")
	}
	key, _, err := cfg.LoadKey()
	if err != nil {
		return err
	}
	tokens, err := paragon.NewTokens(paragon.TokensConfig{Key: key, ProjectID: cfg.ProjectID, TTL: cfg.TokenTTL})
	if err != nil {
		return err
	}
	tok, exp, err := tokens.Sign(sub)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	fmt.Fprintf(stderr, "Paragon User Token for sub=%q, aud=%q, expires %s\n", sub, paragon.Audience(cfg.ProjectID), exp.UTC().Format(time.RFC3339))
	return nil
}
