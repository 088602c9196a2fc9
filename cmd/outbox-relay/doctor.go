package main

import (
	"context"
	"crypto/rsa"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/config"
	"github.com/paragon-outbox/outbox-relay/internal/dbsqlc"
	"github.com/paragon-outbox/outbox-relay/internal/migrate"
	"github.com/paragon-outbox/outbox-relay/internal/paragon"
)

// doctorHTTPTimeout bounds the reachability GET of PARAGON_BASE_URL.
const doctorHTTPTimeout = 5 * time.Second

// doctorSubject is the sub of the token doctor mints (never sent anywhere).
const doctorSubject = "outbox-relay-doctor"

// doctorCheck is one line of the doctor's report: OK, FAIL, or SKIP when it
// could not be run because an earlier check failed (not counted as failed).
type doctorCheck struct {
	name    string
	ok      bool
	skipped bool     // not run: detail says which earlier failure stopped it
	detail  string   // why it passed or, when !ok, exactly why it failed
	notes   []string // warnings printed under an OK line
}

// runDoctor checks, in order, everything the relay needs, prints each as OK
// or FAIL with the reason, and fails (exit 1) when any check fails. It
// changes nothing, except that checking migrations on a database that never
// had one creates goose's empty version table.
func runDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, fs, err := loadConfig("doctor", args, stderr, nil)
	var envErr error
	if err != nil {
		if errors.Is(err, errUsage) || errors.Is(err, flag.ErrHelp) {
			return err
		}
		envErr = err // a value that does not parse: reported below
	}
	// The relay settings check covers every variable, not only doctor's own.
	if _, err := config.FromEnv(os.Getenv); err != nil {
		envErr = err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: doctor takes no arguments", errUsage)
	}

	var checks []doctorCheck
	add := func(c doctorCheck) { checks = append(checks, c) }

	pool, c := doctorDatabase(ctx, cfg)
	add(c)
	if pool != nil {
		defer pool.Close()
	}
	add(doctorMigrations(ctx, pool))
	key, c := doctorKey(cfg)
	add(c)
	add(doctorProject(cfg))
	add(doctorToken(cfg, key))
	add(doctorParagon(ctx, cfg))
	add(doctorParagonAuth(ctx, cfg, key))
	add(doctorSettings(cfg, envErr))

	failed, skipped := 0, 0
	for _, c := range checks {
		state := "OK"
		switch {
		case c.skipped:
			state = "SKIP"
			skipped++
		case !c.ok:
			state = "FAIL"
			failed++
		}
		fmt.Fprintf(stdout, "%-4s  %-14s  %s\n", state, c.name, c.detail)
		for _, n := range c.notes {
			fmt.Fprintf(stdout, "      %-14s  warning: %s\n", "", n)
		}
	}
	if failed > 0 && skipped > 0 {
		return fmt.Errorf("%d of %d checks failed, %d not checked because of them", failed, len(checks), skipped)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d checks failed", failed, len(checks))
	}
	fmt.Fprintf(stdout, "All %d checks passed.\n", len(checks))
	return nil
}

func doctorFail(name, format string, a ...any) doctorCheck {
	return doctorCheck{name: name, detail: fmt.Sprintf(format, a...)}
}

// doctorSkip is a check not run because of the failures named in why.
func doctorSkip(name, why string) doctorCheck {
	return doctorCheck{name: name, skipped: true, detail: "not checked: " + why}
}

// needsKeyAndProject says which of the signing key and the project id, both
// needed to mint a token, are missing ("" when neither is).
func needsKeyAndProject(cfg config.Config, key *rsa.PrivateKey) string {
	noProject := strings.TrimSpace(cfg.ProjectID) == ""
	switch {
	case key == nil && noProject:
		return "no usable signing key and no PARAGON_PROJECT_ID (see above)"
	case key == nil:
		return "no usable signing key (see \"signing key\" above)"
	case noProject:
		return "PARAGON_PROJECT_ID is not set (see \"project id\" above)"
	}
	return ""
}

// doctorDatabase: DATABASE_URL parses and a connection answers.
func doctorDatabase(ctx context.Context, cfg config.Config) (*pgxpool.Pool, doctorCheck) {
	const name = "database"
	pool, err := openPool(ctx, cfg, 2)
	if err != nil {
		return nil, doctorFail(name, "%v", config.RedactError(err, cfg.DatabaseURL))
	}
	version, err := dbsqlc.New(pool).ServerVersion(ctx)
	if err != nil {
		pool.Close()
		return nil, doctorFail(name, "connected to %s but a query failed: %v", config.RedactURL(cfg.DatabaseURL), config.RedactError(err, cfg.DatabaseURL))
	}
	return pool, doctorCheck{name: name, ok: true, detail: fmt.Sprintf("connected to %s (PostgreSQL %s)", config.RedactURL(cfg.DatabaseURL), version)}
}

// doctorMigrations: every migration this binary carries is applied.
func doctorMigrations(ctx context.Context, pool *pgxpool.Pool) doctorCheck {
	const name = "migrations"
	if pool == nil {
		return doctorSkip(name, "no database connection (see \"database\" above)")
	}
	if err := migrate.Check(ctx, pool); err != nil {
		return doctorFail(name, "%v", err)
	}
	st, err := migrate.List(ctx, pool)
	if err != nil || len(st) == 0 {
		return doctorFail(name, "cannot list migrations: %v", err)
	}
	return doctorCheck{name: name, ok: true, detail: fmt.Sprintf("all %d migrations applied (latest %05d)", len(st), st[len(st)-1].Version)}
}

// doctorKey: exactly one key source is set and the key parses. The key's
// size is printed, never the key.
func doctorKey(cfg config.Config) (*rsa.PrivateKey, doctorCheck) {
	const name = "signing key"
	switch {
	case cfg.SigningKeyPEM == "" && cfg.SigningKeyFile == "":
		return nil, doctorFail(name, "PARAGON_SIGNING_KEY or PARAGON_SIGNING_KEY_FILE is required (the project's signing key, PEM)")
	case cfg.SigningKeyPEM != "" && cfg.SigningKeyFile != "":
		return nil, doctorFail(name, "set only one of PARAGON_SIGNING_KEY and PARAGON_SIGNING_KEY_FILE")
	}
	key, warn, err := cfg.LoadKey()
	if err != nil {
		return nil, doctorFail(name, "%v", err)
	}
	src := "PARAGON_SIGNING_KEY"
	if cfg.SigningKeyFile != "" {
		src = fmt.Sprintf("PARAGON_SIGNING_KEY_FILE (%s)", cfg.SigningKeyFile)
	}
	c := doctorCheck{name: name, ok: true, detail: fmt.Sprintf("RSA %d-bit private key from %s", key.N.BitLen(), src)}
	if warn != "" {
		c.notes = append(c.notes, string(warn))
	}
	return key, c
}

// doctorProject: PARAGON_PROJECT_ID is set and is a single path segment.
func doctorProject(cfg config.Config) doctorCheck {
	const name = "project id"
	p := cfg.ProjectID
	switch {
	case strings.TrimSpace(p) == "":
		return doctorFail(name, "PARAGON_PROJECT_ID is not set (your Paragon project id, from the dashboard)")
	case strings.ContainsAny(p, "/?#% \t\n"):
		return doctorFail(name, "PARAGON_PROJECT_ID=%q is not a valid project id", p)
	}
	return doctorCheck{name: name, ok: true, detail: "PARAGON_PROJECT_ID=" + p}
}

// doctorToken: a Paragon User Token can be minted with the key and verifies
// against the key's public half, with the claims Paragon checks.
func doctorToken(cfg config.Config, key *rsa.PrivateKey) doctorCheck {
	const name = "user token"
	if why := needsKeyAndProject(cfg, key); why != "" {
		return doctorSkip(name, why)
	}
	tokens, err := paragon.NewTokens(paragon.TokensConfig{Key: key, ProjectID: cfg.ProjectID, TTL: cfg.TokenTTL})
	if err != nil {
		return doctorFail(name, "%v", err)
	}
	tok, exp, err := tokens.Sign(doctorSubject)
	if err != nil {
		return doctorFail(name, "%v", err)
	}
	aud := paragon.Audience(cfg.ProjectID)
	var claims jwt.RegisteredClaims
	_, err = jwt.NewParser(
		jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithAudience(aud),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
	).ParseWithClaims(tok, &claims, func(*jwt.Token) (any, error) { return &key.PublicKey, nil })
	if err != nil {
		return doctorFail(name, "a freshly minted token does not verify against the key's public half: %v", err)
	}
	if claims.Subject != doctorSubject {
		return doctorFail(name, "the minted token's sub is %q, want %q", claims.Subject, doctorSubject)
	}
	if claims.ExpiresAt == nil || !claims.ExpiresAt.Time.Equal(exp) || claims.IssuedAt == nil {
		return doctorFail(name, "the minted token's exp/iat claims are wrong")
	}
	return doctorCheck{name: name, ok: true, detail: fmt.Sprintf("minted an RS256 token (sub %q, aud %q, valid for %s) and verified it with the public key",
		doctorSubject, aud, claims.ExpiresAt.Sub(claims.IssuedAt.Time))}
}

// doctorParagon: PARAGON_BASE_URL answers HTTP. Any response, whatever its
// status, counts as reachable (an API's bare base URL may well answer 404;
// "paragon auth" checks the API itself); no redirect is followed.
func doctorParagon(ctx context.Context, cfg config.Config) doctorCheck {
	const name = "paragon"
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return doctorFail(name, "PARAGON_BASE_URL=%q is not an http(s) URL", cfg.BaseURL)
	}
	ctx, cancel := context.WithTimeout(ctx, doctorHTTPTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.BaseURL, nil)
	if err != nil {
		return doctorFail(name, "PARAGON_BASE_URL=%q: %v", cfg.BaseURL, err)
	}
	client := &http.Client{
		Timeout:       doctorHTTPTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return doctorFail(name, "PARAGON_BASE_URL=%s is unreachable: %v", cfg.BaseURL, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return doctorCheck{name: name, ok: true, detail: fmt.Sprintf("PARAGON_BASE_URL=%s is reachable: a server answered in %s (%s to a GET of the bare base URL; the API is checked below)",
		cfg.BaseURL, time.Since(start).Round(time.Millisecond), resp.Status)}
}

// doctorParagonAuth asks Paragon whether it accepts a token signed with the
// configured key for the configured project, without sending an event:
// GET {base}/projects/{projectId}/sdk/me with a Paragon User Token
// (docs/PARAGON.md, "Other endpoints"). 401/403 mean the key does not belong to
// the project (or was rotated); 404 means Paragon does not know the project.
// It is not run without a key, a project id or an http(s) PARAGON_BASE_URL.
func doctorParagonAuth(ctx context.Context, cfg config.Config, key *rsa.PrivateKey) doctorCheck {
	const name = "paragon auth"
	if why := needsKeyAndProject(cfg, key); why != "" {
		return doctorSkip(name, why)
	}
	if u, err := url.Parse(cfg.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return doctorSkip(name, "PARAGON_BASE_URL is not an http(s) URL (see \"paragon\" above)")
	}
	tokens, err := paragon.NewTokens(paragon.TokensConfig{Key: key, ProjectID: cfg.ProjectID, TTL: cfg.TokenTTL})
	if err != nil {
		return doctorFail(name, "%v", err)
	}
	tok, _, err := tokens.Sign(doctorSubject)
	if err != nil {
		return doctorFail(name, "%v", err)
	}
	endpoint := strings.TrimRight(cfg.BaseURL, "/") + "/projects/" + url.PathEscape(cfg.ProjectID) + "/sdk/me"
	ctx, cancel := context.WithTimeout(ctx, doctorHTTPTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return doctorFail(name, "%v", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	client := &http.Client{Timeout: doctorHTTPTimeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		return doctorFail(name, "GET %s failed: %v", endpoint, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return doctorCheck{name: name, ok: true, detail: fmt.Sprintf("Paragon accepted a token for project %s (GET .../sdk/me answered %s)", cfg.ProjectID, resp.Status)}
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return doctorFail(name, "Paragon refused the token (%s): the signing key does not belong to project %s, or it was rotated; every event would fail with 401", resp.Status, cfg.ProjectID)
	case resp.StatusCode == http.StatusNotFound:
		return doctorFail(name, "Paragon answered %s for project %s: check PARAGON_PROJECT_ID and PARAGON_BASE_URL", resp.Status, cfg.ProjectID)
	default:
		return doctorFail(name, "GET %s answered %s", endpoint, resp.Status)
	}
}

// doctorSettings: the remaining RELAY_* and LOG_* settings parse and are in
// range (what the relay checks at start-up besides the items above).
func doctorSettings(cfg config.Config, envErr error) doctorCheck {
	const name = "relay settings"
	// Checked above with their own reasons; neutralised here so each
	// problem is reported once.
	cfg.DatabaseURL = config.DefaultDatabaseURL
	cfg.ProjectID = "doctor"
	cfg.SigningKeyPEM, cfg.SigningKeyFile = "doctor", ""
	cfg.BaseURL = paragon.DefaultBaseURL
	var msgs []string
	for _, e := range []error{envErr, cfg.Validate()} {
		if e == nil {
			continue
		}
		for _, line := range strings.Split(e.Error(), "\n") {
			line = strings.TrimPrefix(strings.TrimSpace(line), "configuration: ")
			if line != "" {
				msgs = append(msgs, line)
			}
		}
	}
	if len(msgs) > 0 {
		return doctorFail(name, "%s", strings.Join(msgs, "; "))
	}
	return doctorCheck{name: name, ok: true, detail: "RELAY_* and LOG_* settings are valid"}
}
