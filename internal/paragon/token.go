package paragon

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Token defaults.
const (
	// DefaultTokenTTL is how long a Paragon User Token is valid (exp - iat).
	// Paragon's examples use one hour.
	DefaultTokenTTL = time.Hour
	// DefaultClockSkew is subtracted from iat so that a relay whose clock
	// runs slightly ahead never presents a token "issued in the future"
	// (CONTRACT.md: iat now or a few seconds earlier, never in the future).
	DefaultClockSkew = 30 * time.Second
	// refreshBefore: a cached token is replaced once less than this is left,
	// so no token expires while a request carrying it is in flight.
	refreshBefore = 5 * time.Minute
)

func init() {
	// A single-element aud is serialised as a plain string, as in Paragon's
	// examples ("aud": "useparagon.com/<projectId>").
	jwt.MarshalSingleStringAsArray = false
}

// Audience returns the aud claim Paragon's setup guide puts in a Paragon
// User Token: "useparagon.com/{projectId}".
func Audience(projectID string) string { return "useparagon.com/" + projectID }

// Tokens signs Paragon User Tokens (RS256; claims sub, iat, exp, aud) and
// caches one per Connected User until shortly before it expires: signing is
// an RSA private-key operation (about a millisecond), and a relay sends many
// events per user. Safe for concurrent use.
type Tokens struct {
	key       *rsa.PrivateKey
	aud       string
	ttl       time.Duration
	skew      time.Duration
	now       func() time.Time
	mu        sync.Mutex
	cache     map[string]cachedToken
	maxCached int
}

type cachedToken struct {
	token string
	exp   time.Time
}

// TokensConfig configures NewTokens. Zero values take the defaults.
type TokensConfig struct {
	Key       *rsa.PrivateKey  // required: the project's signing key
	ProjectID string           // required: the Paragon project id (for aud)
	TTL       time.Duration    // token lifetime; default DefaultTokenTTL; at least 10 minutes
	ClockSkew time.Duration    // iat is set this far in the past; default DefaultClockSkew
	Now       func() time.Time // clock; default time.Now
	MaxCached int              // most tokens kept; default 100,000 (then the cache is cleared)
}

// NewTokens returns a token source. Errors name the missing setting.
func NewTokens(c TokensConfig) (*Tokens, error) {
	if c.Key == nil {
		return nil, errors.New("paragon: tokens: signing key is required")
	}
	if c.ProjectID == "" {
		return nil, errors.New("paragon: tokens: project id is required")
	}
	if c.TTL == 0 {
		c.TTL = DefaultTokenTTL
	}
	if c.TTL < 2*refreshBefore {
		return nil, fmt.Errorf("paragon: tokens: TTL %s is shorter than %s", c.TTL, 2*refreshBefore)
	}
	if c.ClockSkew == 0 {
		c.ClockSkew = DefaultClockSkew
	}
	if c.ClockSkew < 0 || c.TTL-c.ClockSkew <= refreshBefore {
		// Negative skew would put iat in the future; a skew eating the TTL
		// would make tokens (nearly) expired when signed, and never cached.
		return nil, fmt.Errorf("paragon: tokens: clock skew %s must be positive and leave more than %s of the %s TTL", c.ClockSkew, refreshBefore, c.TTL)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MaxCached == 0 {
		c.MaxCached = 100_000
	}
	return &Tokens{key: c.Key, aud: Audience(c.ProjectID), ttl: c.TTL, skew: c.ClockSkew, now: c.Now,
		cache: make(map[string]cachedToken), maxCached: c.MaxCached}, nil
}

// Token returns a valid Paragon User Token for the Connected User sub,
// signing a new one only when the cached one is missing or near expiry.
func (t *Tokens) Token(sub string) (string, error) {
	if sub == "" {
		return "", errors.New("paragon: token: empty sub (Connected User id)")
	}
	now := t.now()
	t.mu.Lock()
	c, ok := t.cache[sub]
	t.mu.Unlock()
	if ok && now.Add(refreshBefore).Before(c.exp) {
		return c.token, nil
	}
	tok, exp, err := t.Sign(sub)
	if err != nil {
		return "", err
	}
	t.mu.Lock()
	if len(t.cache) >= t.maxCached {
		clear(t.cache)
	}
	t.cache[sub] = cachedToken{token: tok, exp: exp}
	t.mu.Unlock()
	return tok, nil
}

// Sign mints a new token for sub without caching it; it returns the token and
// its expiry. Used by Token and by `outbox-relay token` for debugging.
func (t *Tokens) Sign(sub string) (string, time.Time, error) {
	iat := t.now().Add(-t.skew).Truncate(time.Second)
	exp := iat.Add(t.ttl)
	claims := jwt.RegisteredClaims{
		Subject:   sub,
		Audience:  jwt.ClaimStrings{t.aud},
		IssuedAt:  jwt.NewNumericDate(iat),
		ExpiresAt: jwt.NewNumericDate(exp),
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	s, err := tok.SignedString(t.key)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("paragon: sign token: %w", err)
	}
	return s, exp, nil
}

// Forget drops every cached token, e.g. after the signing key was rotated.
func (t *Tokens) Forget() {
	t.mu.Lock()
	clear(t.cache)
	t.mu.Unlock()
}
