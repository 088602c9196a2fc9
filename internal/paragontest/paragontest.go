// Package paragontest sets up Paragon for tests: a signing key, a local
// Paragon-compatible endpoint (internal/paragonlocal) that verifies tokens
// signed with it, served over real HTTP on loopback, a Paragon User Token
// source and the relay's Paragon client pointed at it. Nothing the relay
// runs in production imports it.
package paragontest

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"sync"
	"testing"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/paragon"
	"github.com/paragon-outbox/outbox-relay/internal/paragonlocal"
)

// DefaultProjectID is the project id of a Setup whose Options name none.
const DefaultProjectID = "test-project"

// DefaultClientTimeout is the client's timeout per HTTP exchange unless
// Options.ClientTimeout is set.
const DefaultClientTimeout = 5 * time.Second

// Options configure New. The zero value is a working setup.
type Options struct {
	ProjectID string                      // default DefaultProjectID
	Key       *rsa.PrivateKey             // default: Key(t), shared by the test binary
	Faults    paragonlocal.Faults         // the endpoint's initial fault injection
	Endpoint  func(*paragonlocal.Config)  // adjusts the endpoint's Config before New (e.g. DiscardPayloads, MaxBody)
	Client    func(*paragon.ClientConfig) // adjusts the client's Config (e.g. MaxPayloadBytes, MaxConns)
}

// Setup is a running local Paragon endpoint and a client for it.
type Setup struct {
	ProjectID string
	Key       *rsa.PrivateKey      // the signing key; Server verifies with its public half
	KeyPEM    []byte               // Key as PKCS#8 PEM, e.g. for PARAGON_SIGNING_KEY_FILE
	Server    *paragonlocal.Server // what was received, faults, Stats, WaitForCount
	BaseURL   string               // "http://127.0.0.1:PORT", the client's PARAGON_BASE_URL
	Tokens    *paragon.Tokens      // signs with Key for ProjectID
	Client    *paragon.Client      // sends to BaseURL with Tokens
}

var (
	keyOnce sync.Once
	key     *rsa.PrivateKey
	keyPEM  []byte
	keyErr  error
)

// Key returns a 2048-bit RSA signing key and its PKCS#8 PEM, generated once
// per test binary (RSA key generation takes a while).
func Key(t testing.TB) (*rsa.PrivateKey, []byte) {
	t.Helper()
	keyOnce.Do(func() { key, keyPEM, keyErr = paragonlocal.GenerateKey() })
	if keyErr != nil {
		t.Fatal(keyErr)
	}
	return key, keyPEM
}

// NewKey returns a fresh 2048-bit RSA signing key and its PKCS#8 PEM, e.g.
// a key the endpoint does not know.
func NewKey(t testing.TB) (*rsa.PrivateKey, []byte) {
	t.Helper()
	k, p, err := paragonlocal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k, p
}

// New starts a local Paragon endpoint on 127.0.0.1 for o.ProjectID that
// verifies tokens signed with o.Key, and returns it with a token source and
// a client for it. The endpoint stops when the test ends.
func New(t testing.TB, o Options) *Setup {
	t.Helper()
	if o.ProjectID == "" {
		o.ProjectID = DefaultProjectID
	}
	if o.Key == nil {
		o.Key, _ = Key(t)
	}
	cfg := paragonlocal.Config{ProjectID: o.ProjectID, PublicKey: &o.Key.PublicKey, Faults: o.Faults}
	if o.Endpoint != nil {
		o.Endpoint(&cfg)
	}
	srv, err := paragonlocal.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	base, stop, err := paragonlocal.Start("127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Bounded: connections a client dialled but never used would hold
		// Shutdown for 5 s (net/http treats them as new); requests still
		// running after a second are canceled.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = stop(ctx)
	})
	der, err := x509.MarshalPKCS8PrivateKey(o.Key)
	if err != nil {
		t.Fatal(err)
	}
	s := &Setup{ProjectID: o.ProjectID, Key: o.Key, Server: srv, BaseURL: base,
		KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})}
	s.Tokens = s.NewTokens(t, o.Key)
	s.Client = s.NewClient(t, s.Tokens, o.Client)
	return s
}

// NewTokens returns a token source signing with key (which need not be
// the endpoint's) for the setup's project.
func (s *Setup) NewTokens(t testing.TB, key *rsa.PrivateKey) *paragon.Tokens {
	t.Helper()
	tk, err := paragon.NewTokens(paragon.TokensConfig{Key: key, ProjectID: s.ProjectID})
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// NewClient returns another client for the endpoint, sending with tokens,
// its config adjusted by mod (may be nil).
func (s *Setup) NewClient(t testing.TB, tokens *paragon.Tokens, mod func(*paragon.ClientConfig)) *paragon.Client {
	t.Helper()
	cc := paragon.ClientConfig{BaseURL: s.BaseURL, ProjectID: s.ProjectID, Tokens: tokens, Timeout: DefaultClientTimeout}
	if mod != nil {
		mod(&cc)
	}
	c, err := paragon.NewClient(cc)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
