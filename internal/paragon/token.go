package paragon

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"
)

// Token defaults.
const (
	// DefaultTokenTTL is how long a Paragon User Token is valid (exp - iat).
	// Paragon's examples use one hour.
	DefaultTokenTTL = time.Hour
	// DefaultClockSkew is subtracted from iat so that a relay whose clock
	// runs slightly ahead never presents a token "issued in the future"
	// (docs/PARAGON.md: iat now or a few seconds earlier, never in the future).
	DefaultClockSkew = 30 * time.Second
	// DefaultMaxCached is how many Connected Users' tokens are cached; past
	// it the least recently used token is evicted.
	DefaultMaxCached = 100_000
	// DefaultRefreshAhead is the longest a background refresh starts before
	// the serving cutoff (see TokensConfig.RefreshAhead).
	DefaultRefreshAhead = 15 * time.Minute
	// refreshBefore is the serving cutoff: a cached token is never served
	// with less than this left, so no token expires while a request carrying
	// it is in flight. At the cutoff the caller signs (or joins the signature
	// already under way for its user).
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
// caches one per Connected User: signing is an RSA private-key operation
// (about a millisecond), and a relay sends many events per user. Safe for
// concurrent use.
//
// The cache is a bounded LRU (TokensConfig.MaxCached users; the least
// recently used user's token is evicted when full). At most one signature per
// user is under way at a time: concurrent callers for a user whose token is
// missing wait for that one signature and share it. A cached token is served
// until 5 minutes before its exp and refreshed in the background before
// that, at a time drawn at random per token (TokensConfig.RefreshAhead), so
// tokens minted together are not all replaced in the same minute and callers
// whose token is valid never wait for a signature.
type Tokens struct {
	key          *rsa.PrivateKey
	aud          string
	ttl          time.Duration
	skew         time.Duration
	refreshAhead time.Duration // <= 0: no background refresh
	now          func() time.Time

	cache  *lru.Cache[string, *cachedToken]
	flight singleflight.Group
	gen    atomic.Uint64 // bumped by Forget; a signature of an older generation is not cached

	signHook func() // tests only: called at the start of each signature

	signed, refreshed, evicted, pending atomic.Int64
}

type cachedToken struct {
	token      string
	exp        time.Time
	refreshAt  time.Time   // background refresh starts at or after this instant
	refreshing atomic.Bool // a background refresh is under way
}

// TokensConfig configures NewTokens. Zero values take the defaults.
type TokensConfig struct {
	Key       *rsa.PrivateKey  // required: the project's signing key
	ProjectID string           // required: the Paragon project id (for aud)
	TTL       time.Duration    // token lifetime; default DefaultTokenTTL; at least 10 minutes
	ClockSkew time.Duration    // iat is set this far in the past; default DefaultClockSkew
	Now       func() time.Time // clock; default time.Now
	MaxCached int              // most users' tokens kept; default DefaultMaxCached; then LRU eviction

	// RefreshAhead bounds how early a cached token is replaced in the
	// background: each token's refresh instant is drawn uniformly between
	// RefreshAhead and RefreshAhead/4 before its serving cutoff (exp - 5m).
	// Default: DefaultRefreshAhead, at most half of the time a token is
	// served (TTL - ClockSkew - 5m). Negative: no background refresh; tokens
	// are then replaced by the caller that reaches the cutoff.
	RefreshAhead time.Duration
}

// TokenStats are a Tokens' counters since it was created.
type TokenStats struct {
	Signed         int64 // signatures made (each an RSA private-key operation)
	Refreshed      int64 // of which background refreshes of a still-valid token
	RefreshPending int64 // background refreshes started and not finished
	Evicted        int64 // tokens evicted because the cache was full
	Cached         int   // tokens in the cache now
}

// NewTokens returns a token source. Errors name the wrong setting.
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
	if c.MaxCached < 0 {
		return nil, fmt.Errorf("paragon: tokens: MaxCached %d must not be negative", c.MaxCached)
	}
	if c.MaxCached == 0 {
		c.MaxCached = DefaultMaxCached
	}
	if c.RefreshAhead == 0 {
		c.RefreshAhead = DefaultRefreshAhead
	}
	if served := c.TTL - c.ClockSkew - refreshBefore; c.RefreshAhead > served/2 {
		c.RefreshAhead = served / 2
	}
	cache, err := lru.New[string, *cachedToken](c.MaxCached)
	if err != nil {
		return nil, fmt.Errorf("paragon: tokens: %w", err)
	}
	return &Tokens{key: c.Key, aud: Audience(c.ProjectID), ttl: c.TTL, skew: c.ClockSkew,
		refreshAhead: c.RefreshAhead, now: c.Now, cache: cache}, nil
}

// Token returns a valid Paragon User Token for the Connected User sub, with
// at least 5 minutes left before its exp. A cached token is returned at once
// (starting its background refresh when due); otherwise the caller signs,
// or waits for the signature already under way for sub.
func (t *Tokens) Token(sub string) (string, error) {
	if sub == "" {
		return "", errors.New("paragon: token: empty sub (Connected User id)")
	}
	now := t.now()
	if c, ok := t.cache.Get(sub); ok && servable(c, now) {
		if t.refreshAhead > 0 && !now.Before(c.refreshAt) && c.refreshing.CompareAndSwap(false, true) {
			t.pending.Add(1)
			go t.refresh(sub, c)
		}
		return c.token, nil
	}
	for {
		v, err, _ := t.flight.Do(sub, func() (any, error) {
			// A signature that finished just before this flight began is fine.
			if c, ok := t.cache.Peek(sub); ok && servable(c, t.now()) {
				return c, nil
			}
			return t.signAndCache(sub)
		})
		if err != nil {
			return "", err
		}
		// The flight joined may have signed before now (a background
		// refresh held up): its token must still be servable now. A second
		// flight starts after now, so this loops at most once more.
		if c := v.(*cachedToken); servable(c, now) {
			return c.token, nil
		}
	}
}

// servable reports whether c may be handed out at now: more than
// refreshBefore before its exp.
func servable(c *cachedToken, now time.Time) bool {
	return now.Add(refreshBefore).Before(c.exp)
}

// refresh replaces old, still-valid token of sub in the background, sharing
// the one signature per user with any caller that reaches the cutoff.
func (t *Tokens) refresh(sub string, old *cachedToken) {
	defer t.pending.Add(-1)
	_, _, _ = t.flight.Do(sub, func() (any, error) {
		if c, ok := t.cache.Peek(sub); ok && c != old && servable(c, t.now()) {
			return c, nil // replaced meanwhile
		}
		c, err := t.signAndCache(sub)
		if err != nil {
			old.refreshing.Store(false) // try again on a later call
			return nil, err
		}
		t.refreshed.Add(1)
		return c, nil
	})
}

// signAndCache signs a token for sub and caches it (unless Forget was called
// meanwhile) with its own random refresh instant.
func (t *Tokens) signAndCache(sub string) (*cachedToken, error) {
	gen := t.gen.Load()
	tok, exp, err := t.Sign(sub)
	if err != nil {
		return nil, err
	}
	c := &cachedToken{token: tok, exp: exp}
	if t.refreshAhead > 0 {
		spread := t.refreshAhead - t.refreshAhead/4
		c.refreshAt = exp.Add(-refreshBefore - t.refreshAhead/4 - rand.N(spread))
	}
	if t.gen.Load() == gen {
		if t.cache.Add(sub, c) {
			t.evicted.Add(1)
		}
	}
	return c, nil
}

// Sign mints a new token for sub without caching it; it returns the token and
// its expiry. Used by Token and by `outbox-relay token` for debugging.
func (t *Tokens) Sign(sub string) (string, time.Time, error) {
	if t.signHook != nil {
		t.signHook()
	}
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
	t.signed.Add(1)
	return s, exp, nil
}

// Forget drops every cached token, e.g. after the signing key was rotated.
// A signature under way when Forget is called is returned to its callers but
// not cached.
func (t *Tokens) Forget() {
	t.gen.Add(1)
	t.cache.Purge()
}

// Stats returns the counters. Each is read atomically; the set is not one
// snapshot.
func (t *Tokens) Stats() TokenStats {
	return TokenStats{Signed: t.signed.Load(), Refreshed: t.refreshed.Load(),
		RefreshPending: t.pending.Load(),
		Evicted:        t.evicted.Load(), Cached: t.cache.Len()}
}
