package paragonlocal

import (
	"errors"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// tokenInfo is what a verified token contributes to each request. It is kept
// in the verification cache so that a cached token still goes through every
// time- and audience-dependent check (checkClaims) on each use.
type tokenInfo struct {
	sub            string
	exp, iat, nbf  time.Time
	hasExp, hasIat bool
	hasNbf         bool
	aud            []string
}

// authenticate checks an Authorization header value and returns the token's
// sub, or a non-empty reason naming the failed check. The reason never
// contains the token.
func (s *Server) authenticate(header string) (sub, reason string) {
	if header == "" {
		return "", "missing Authorization header"
	}
	scheme, rest, _ := strings.Cut(header, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", "Authorization must use the Bearer scheme"
	}
	tok := strings.TrimSpace(rest)
	if tok == "" {
		return "", "empty bearer token"
	}
	now := s.now()

	s.cacheMu.RLock()
	ti, hit := s.cache[tok]
	s.cacheMu.RUnlock()
	if hit {
		s.st.cacheHits.Add(1)
		if reason := s.checkClaims(&ti, now); reason != "" {
			return "", reason
		}
		return ti.sub, ""
	}

	s.st.verifications.Add(1)
	ti, reason = s.verify(tok)
	if reason != "" {
		return "", reason
	}
	if reason := s.checkClaims(&ti, now); reason != "" {
		return "", reason // not cached: it may become valid (iat/nbf) later
	}
	s.cacheMu.Lock()
	if len(s.cache) >= TokenCacheSize {
		clear(s.cache)
	}
	s.cache[tok] = ti
	s.cacheMu.Unlock()
	return ti.sub, ""
}

// verify parses tok and checks its RS256 signature against the configured key.
func (s *Server) verify(tok string) (tokenInfo, string) {
	var c jwt.RegisteredClaims
	t, err := s.parser.ParseWithClaims(tok, &c, s.keyFunc)
	if err != nil {
		switch {
		case errors.Is(err, jwt.ErrTokenMalformed):
			return tokenInfo{}, "token is malformed"
		case t != nil && t.Header["alg"] != "RS256":
			return tokenInfo{}, "token signing method must be RS256"
		case errors.Is(err, jwt.ErrTokenSignatureInvalid):
			return tokenInfo{}, "token signature is invalid"
		default:
			return tokenInfo{}, "token cannot be verified"
		}
	}
	ti := tokenInfo{sub: c.Subject, aud: c.Audience}
	if c.ExpiresAt != nil {
		ti.exp, ti.hasExp = c.ExpiresAt.Time, true
	}
	if c.IssuedAt != nil {
		ti.iat, ti.hasIat = c.IssuedAt.Time, true
	}
	if c.NotBefore != nil {
		ti.nbf, ti.hasNbf = c.NotBefore.Time, true
	}
	return ti, ""
}

// checkClaims applies the claim checks to a verified token at time now:
// sub non-empty; exp present and now before exp (no leeway); iat present and
// at most IATLeeway in the future; nbf, if present, at most IATLeeway in the
// future; aud containing "useparagon.com/{projectId}".
func (s *Server) checkClaims(ti *tokenInfo, now time.Time) string {
	switch {
	case ti.sub == "":
		return "token sub claim is missing or empty"
	case !ti.hasExp:
		return "token exp claim is missing"
	case !now.Before(ti.exp):
		return "token is expired (exp)"
	case !ti.hasIat:
		return "token iat claim is missing"
	case ti.iat.After(now.Add(IATLeeway)):
		return "token iat is in the future"
	case ti.hasNbf && ti.nbf.After(now.Add(IATLeeway)):
		return "token is not valid yet (nbf)"
	}
	for _, a := range ti.aud {
		if a == s.wantAud {
			return ""
		}
	}
	return "token aud must be " + s.wantAud
}
