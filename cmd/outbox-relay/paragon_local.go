package main

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/paragon"
	"github.com/paragon-outbox/outbox-relay/internal/paragonlocal"
)

func runParagonLocal(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("outbox-relay paragon-local", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		addr, project, pubKeyFile, keyFile, recordFile string
		f                                              paragonlocal.Faults
	)
	fs.StringVar(&addr, "addr", "127.0.0.1:8089", "listen address")
	fs.StringVar(&project, "project-id", os.Getenv("PARAGON_PROJECT_ID"), "project id to answer for (env PARAGON_PROJECT_ID)")
	fs.StringVar(&keyFile, "signing-key-file", os.Getenv("PARAGON_SIGNING_KEY_FILE"), "signing key PEM whose public half verifies tokens (env PARAGON_SIGNING_KEY_FILE)")
	fs.StringVar(&pubKeyFile, "public-key-file", "", "or: a PEM public key (BEGIN PUBLIC KEY) to verify tokens with")
	fs.StringVar(&recordFile, "record", "", "append one JSON line per accepted event to this file")
	fs.Float64Var(&f.Fail500, "fail500", 0, "share of requests answered 500")
	fs.Float64Var(&f.Fail429, "fail429", 0, "share of requests answered 429")
	fs.StringVar(&f.RetryAfter, "retry-after", "1", "Retry-After on 429s (seconds or HTTP-date)")
	fs.Float64Var(&f.Slow, "slow", 0, "share of requests answered after -slow-delay")
	fs.DurationVar(&f.SlowDelay, "slow-delay", 2*time.Second, "delay of slow requests")
	fs.Float64Var(&f.Drop, "drop", 0, "share of requests whose connection is closed without an answer")
	fs.DurationVar(&f.Latency, "latency", 0, "added to every request")
	var rejectStatus int
	var rejectShare float64
	var rejectMatch string
	fs.IntVar(&rejectStatus, "reject-status", 422, "status for rejected events (with -reject-share or -reject-match), e.g. 400, 413, 422")
	fs.Float64Var(&rejectShare, "reject-share", 0, "share of events answered -reject-status (permanent failures: the relay makes them dead)")
	fs.StringVar(&rejectMatch, "reject-match", "", "answer -reject-status to every event whose payload contains this text")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if err := noArgs("paragon-local", fs); err != nil {
		return err
	}
	if project == "" {
		return errors.New("-project-id (or PARAGON_PROJECT_ID) is required")
	}
	cfg := paragonlocal.Config{ProjectID: project, Faults: f}
	switch {
	case pubKeyFile != "":
		pub, err := readPublicKey(pubKeyFile)
		if err != nil {
			return err
		}
		cfg.PublicKey = pub
	case keyFile != "":
		b, err := os.ReadFile(keyFile)
		if err != nil {
			return fmt.Errorf("-signing-key-file: %w", err)
		}
		key, err := paragon.ParseSigningKey(string(b))
		if err != nil {
			return fmt.Errorf("-signing-key-file: %w", err)
		}
		cfg.PublicKey = &key.PublicKey
	default:
		return errors.New("give -signing-key-file or -public-key-file: the endpoint verifies tokens against the project's key")
	}
	if recordFile != "" {
		rf, err := os.OpenFile(recordFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("-record: %w", err)
		}
		defer rf.Close()
		cfg.Recorder = rf
	}
	srv, err := paragonlocal.New(cfg)
	if err != nil {
		return err
	}
	if rejectShare > 0 || rejectMatch != "" {
		if rejectStatus < 400 || rejectStatus > 599 {
			return fmt.Errorf("%w: -reject-status %d is not a 4xx or 5xx status", errUsage, rejectStatus)
		}
		srv.SetRejectReasonFunc(func(name, sub string, payload json.RawMessage) (int, string) {
			if rejectMatch != "" && bytes.Contains(payload, []byte(rejectMatch)) {
				return rejectStatus, fmt.Sprintf("payload matches -reject-match %q", rejectMatch)
			}
			if rejectShare > 0 && rand.Float64() < rejectShare {
				return rejectStatus, fmt.Sprintf("drawn by -reject-share %g", rejectShare)
			}
			return 0, ""
		})
	}
	fmt.Fprintf(stderr, "local Paragon endpoint for project %q on http://%s (POST /projects/%s/sdk/events/trigger)\n", project, addr, project)
	return paragonlocal.ListenAndServe(ctx, addr, srv)
}

// readPublicKey reads an RSA public key in PEM (PKIX "PUBLIC KEY" or PKCS#1
// "RSA PUBLIC KEY").
func readPublicKey(path string) (*rsa.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("-public-key-file: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("-public-key-file: no PEM block found")
	}
	if block.Type == "RSA PUBLIC KEY" {
		return x509.ParsePKCS1PublicKey(block.Bytes)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("-public-key-file: %w", err)
	}
	pub, ok := k.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("-public-key-file: %T is not an RSA key", k)
	}
	return pub, nil
}
