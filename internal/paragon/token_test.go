package paragon_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/paragon-outbox/outbox-relay/internal/paragon"
)

const testProject = "proj-123"

// t0 has a fractional second on purpose, to see iat truncated.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 700_000_000, time.UTC)

func newTokens(t testing.TB, clock *fakeClock, mod func(*paragon.TokensConfig)) *paragon.Tokens {
	t.Helper()
	c := paragon.TokensConfig{Key: testKey(), ProjectID: testProject, Now: clock.Now}
	if mod != nil {
		mod(&c)
	}
	tk, err := paragon.NewTokens(c)
	if err != nil {
		t.Fatalf("NewTokens: %v", err)
	}
	return tk
}

// verifyToken checks tok with the public key as RS256 (both with jwt/v5 and
// with crypto/rsa directly) at time now, and returns its claims.
func verifyToken(t testing.TB, tok string, pub *rsa.PublicKey, now time.Time) *jwt.RegisteredClaims {
	t.Helper()
	claims := &jwt.RegisteredClaims{}
	parsed, err := jwt.ParseWithClaims(tok, claims,
		func(tk *jwt.Token) (any, error) { return pub, nil },
		jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithAudience(paragon.Audience(testProject)),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	if err != nil {
		t.Fatalf("token does not verify: %v", err)
	}
	if parsed.Header["alg"] != "RS256" {
		t.Fatalf("alg = %v, want RS256", parsed.Header["alg"])
	}
	// Independent of the JWT library: PKCS#1 v1.5 over SHA-256 of header.claims.
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatalf("signature is not base64url: %v", err)
	}
	h := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], sig); err != nil {
		t.Fatalf("rsa.VerifyPKCS1v15: %v", err)
	}
	return claims
}

// rawClaims returns the JSON object of the token's claims segment, each
// member as raw JSON.
func rawClaims(t testing.TB, tok string) map[string]json.RawMessage {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("claims segment: %v", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("claims segment %s: %v", b, err)
	}
	return m
}

func TestTokenClaims(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ttl      time.Duration
		skew     time.Duration
		wantTTL  time.Duration
		wantSkew time.Duration
	}{
		{"defaults", 0, 0, time.Hour, 30 * time.Second},
		{"custom", 20 * time.Minute, 5 * time.Second, 20 * time.Minute, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock(t0)
			tk := newTokens(t, clock, func(c *paragon.TokensConfig) { c.TTL, c.ClockSkew = tc.ttl, tc.skew })
			tok, err := tk.Token("user-42")
			if err != nil {
				t.Fatal(err)
			}
			claims := verifyToken(t, tok, &testKey().PublicKey, clock.Now())

			wantIat := t0.Add(-tc.wantSkew).Truncate(time.Second)
			if !claims.IssuedAt.Time.Equal(wantIat) {
				t.Errorf("iat = %s, want %s", claims.IssuedAt.Time, wantIat)
			}
			if claims.IssuedAt.Time.After(clock.Now()) {
				t.Errorf("iat %s is in the future (now %s)", claims.IssuedAt.Time, clock.Now())
			}
			if got := claims.ExpiresAt.Time.Sub(claims.IssuedAt.Time); got != tc.wantTTL {
				t.Errorf("exp - iat = %s, want %s", got, tc.wantTTL)
			}
			if claims.Subject != "user-42" {
				t.Errorf("sub = %q", claims.Subject)
			}

			raw := rawClaims(t, tok)
			for name, want := range map[string]string{
				"sub": `"user-42"`,
				"aud": `"useparagon.com/proj-123"`, // a JSON string, not an array
				"iat": fmt.Sprint(wantIat.Unix()),
				"exp": fmt.Sprint(wantIat.Add(tc.wantTTL).Unix()),
			} {
				if got := string(raw[name]); got != want {
					t.Errorf("raw claim %s = %s, want %s", name, got, want)
				}
			}
			if len(raw) != 4 {
				t.Errorf("claims = %v, want exactly sub, aud, iat, exp", raw)
			}

			// Sign mints the same claims and reports the expiry.
			tok2, exp, err := tk.Sign("user-42")
			if err != nil {
				t.Fatal(err)
			}
			if !exp.Equal(wantIat.Add(tc.wantTTL)) {
				t.Errorf("Sign exp = %s, want %s", exp, wantIat.Add(tc.wantTTL))
			}
			// RS256 (PKCS#1 v1.5) is deterministic: same claims, same token.
			if tok2 != tok {
				t.Error("Sign at the same instant gave a different token")
			}
		})
	}
}

func TestTokenWrongKeyDoesNotVerify(t *testing.T) {
	tk := newTokens(t, newFakeClock(t0), nil)
	tok, err := tk.Token("u")
	if err != nil {
		t.Fatal(err)
	}
	other := mustKey(t)
	_, err = jwt.Parse(tok, func(*jwt.Token) (any, error) { return &other.PublicKey, nil },
		jwt.WithTimeFunc(func() time.Time { return t0 }))
	if err == nil {
		t.Fatal("token verified with an unrelated public key")
	}
}

func TestAudience(t *testing.T) {
	if got := paragon.Audience("abc"); got != "useparagon.com/abc" {
		t.Fatalf("Audience = %q", got)
	}
}

func TestTokenCache(t *testing.T) {
	clock := newFakeClock(t0)
	// Without background refresh, to see the serving cutoff on its own
	// (background refresh: token_cache_test.go).
	tk := newTokens(t, clock, func(c *paragon.TokensConfig) { c.RefreshAhead = -1 })

	a1, err := tk.Token("a")
	if err != nil {
		t.Fatal(err)
	}
	exp := verifyToken(t, a1, &testKey().PublicKey, clock.Now()).ExpiresAt.Time

	// Ten seconds later a new signature would carry another iat and so
	// differ; the cache must return the first token.
	clock.Advance(10 * time.Second)
	fresh, _, err := tk.Sign("a")
	if err != nil {
		t.Fatal(err)
	}
	if fresh == a1 {
		t.Fatal("test premise: a token signed 10s later should differ")
	}
	if got, _ := tk.Token("a"); got != a1 {
		t.Fatal("Token did not return the cached token for the same sub")
	}

	b1, err := tk.Token("b")
	if err != nil {
		t.Fatal(err)
	}
	if b1 == a1 {
		t.Fatal("another sub got the same token")
	}
	if c := verifyToken(t, b1, &testKey().PublicKey, clock.Now()); c.Subject != "b" {
		t.Fatalf("sub = %q, want b", c.Subject)
	}

	// Just over 5 minutes left: still cached.
	clock.Set(exp.Add(-5*time.Minute - time.Second))
	if got, _ := tk.Token("a"); got != a1 {
		t.Fatal("token replaced with more than 5 minutes left")
	}
	// Exactly 5 minutes left: replaced.
	clock.Set(exp.Add(-5 * time.Minute))
	a2, err := tk.Token("a")
	if err != nil {
		t.Fatal(err)
	}
	if a2 == a1 {
		t.Fatal("token not replaced within 5 minutes of exp")
	}
	c2 := verifyToken(t, a2, &testKey().PublicKey, clock.Now())
	if want := clock.Now().Add(-paragon.DefaultClockSkew).Truncate(time.Second); !c2.IssuedAt.Time.Equal(want) {
		t.Fatalf("refreshed iat = %s, want %s", c2.IssuedAt.Time, want)
	}
	// And the refreshed one is cached in turn.
	clock.Advance(time.Second)
	if got, _ := tk.Token("a"); got != a2 {
		t.Fatal("refreshed token not cached")
	}

	// Forget clears every cached token.
	tk.Forget()
	clock.Advance(time.Second)
	a3, _ := tk.Token("a")
	b3, _ := tk.Token("b")
	if a3 == a2 || b3 == b1 {
		t.Fatal("Forget did not clear the cache")
	}
}

func TestTokenCacheBounded(t *testing.T) {
	clock := newFakeClock(t0)
	tk := newTokens(t, clock, func(c *paragon.TokensConfig) { c.MaxCached = 2 })
	a1, _ := tk.Token("a")
	b1, _ := tk.Token("b")
	clock.Advance(time.Second)
	if got, _ := tk.Token("a"); got != a1 {
		t.Fatal("a evicted too early")
	}
	if got, _ := tk.Token("b"); got != b1 {
		t.Fatal("b evicted too early")
	}
	if _, err := tk.Token("c"); err != nil { // third sub: a, the least recently used, is evicted
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	if got, _ := tk.Token("a"); got == a1 {
		t.Fatal("cache grew past MaxCached")
	}
}

func TestTokenEmptySub(t *testing.T) {
	tk := newTokens(t, newFakeClock(t0), nil)
	if tok, err := tk.Token(""); err == nil || tok != "" {
		t.Fatalf("Token(\"\") = %q, %v; want an error", tok, err)
	}
}

func TestNewTokensErrors(t *testing.T) {
	key := testKey()
	for _, tc := range []struct {
		name string
		cfg  paragon.TokensConfig
		want string
	}{
		{"missing key", paragon.TokensConfig{ProjectID: "p"}, "signing key"},
		{"missing project", paragon.TokensConfig{Key: key}, "project id"},
		{"TTL too short", paragon.TokensConfig{Key: key, ProjectID: "p", TTL: 9 * time.Minute}, "TTL"},
		{"TTL negative", paragon.TokensConfig{Key: key, ProjectID: "p", TTL: -time.Hour}, "TTL"},
		{"negative clock skew (iat in the future)", paragon.TokensConfig{Key: key, ProjectID: "p", ClockSkew: -time.Minute}, "clock skew"},
		{"clock skew eats the TTL", paragon.TokensConfig{Key: key, ProjectID: "p", TTL: 20 * time.Minute, ClockSkew: 15 * time.Minute}, "clock skew"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tk, err := paragon.NewTokens(tc.cfg)
			if err == nil {
				t.Fatal("NewTokens accepted it")
			}
			if tk != nil {
				t.Fatal("non-nil Tokens with an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
	// The shortest allowed TTL works.
	if _, err := paragon.NewTokens(paragon.TokensConfig{Key: key, ProjectID: "p", TTL: 10 * time.Minute}); err != nil {
		t.Fatalf("TTL 10m: %v", err)
	}
}

// Run with -race: many goroutines share the cache while the clock moves.
func TestTokenConcurrent(t *testing.T) {
	clock := newFakeClock(t0)
	tk := newTokens(t, clock, nil)
	const goroutines, rounds, subs = 16, 200, 8
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		got = map[string]map[string]bool{} // sub -> tokens seen
	)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				sub := fmt.Sprintf("user-%d", (g+i)%subs)
				if i%50 == 0 {
					tk.Forget()
				}
				tok, err := tk.Token(sub)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if got[sub] == nil {
					got[sub] = map[string]bool{}
				}
				got[sub][tok] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(got) != subs {
		t.Fatalf("tokens for %d subs, want %d", len(got), subs)
	}
	for sub, toks := range got {
		// The clock never moved and RS256 is deterministic: one token per sub.
		if len(toks) != 1 {
			t.Errorf("%s: %d distinct tokens", sub, len(toks))
		}
		for tok := range toks {
			if c := verifyToken(t, tok, &testKey().PublicKey, clock.Now()); c.Subject != sub {
				t.Errorf("token for %s has sub %q", sub, c.Subject)
			}
		}
	}
}

func mustKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func BenchmarkTokenCached(b *testing.B) {
	tk, err := paragon.NewTokens(paragon.TokensConfig{Key: testKey(), ProjectID: testProject})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := tk.Token("user-42"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tk.Token("user-42"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSign(b *testing.B) {
	tk, err := paragon.NewTokens(paragon.TokensConfig{Key: testKey(), ProjectID: testProject})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := tk.Sign("user-42"); err != nil {
			b.Fatal(err)
		}
	}
}
