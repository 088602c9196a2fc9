package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
)

// CSRF defence, two layers:
//  1. net/http's CrossOriginProtection refuses cross-origin unsafe requests
//     (Sec-Fetch-Site / Origin headers of modern browsers);
//  2. a per-session token: the console sets a random session cookie
//     (HttpOnly, SameSite=Strict) and every form carries
//     HMAC-SHA256(process secret, session id + user) as csrf_token; a
//     state-changing request without the cookie, without the token, or with
//     a token of another session or user is refused with 403.

const (
	sessionCookie = "outbox_console_session"
	csrfField     = "csrf_token"
)

type csrfGuard struct {
	secret [32]byte
	secure bool // cookie Secure flag (TLS)
}

func newCSRFGuard(secure bool) *csrfGuard {
	g := &csrfGuard{secure: secure}
	if _, err := rand.Read(g.secret[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return g
}

// session returns the request's session id, setting a new cookie on w when
// there is none.
func (g *csrfGuard) session(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(sessionCookie); err == nil && len(c.Value) == 43 {
		return c.Value
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	id := base64.RawURLEncoding.EncodeToString(b[:])
	// Secure only under TLS: on loopback plain HTTP (the default) a Secure
	// cookie would not come back and every re-drive would be refused.
	//nolint:gosec // G124: Secure is g.secure, see above.
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/", HttpOnly: true, Secure: g.secure, SameSite: http.SameSiteStrictMode})
	return id
}

func (g *csrfGuard) token(session, user string) string {
	m := hmac.New(sha256.New, g.secret[:])
	m.Write([]byte(session))
	m.Write([]byte{0})
	m.Write([]byte(user))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// valid reports whether r (already form-parsed) carries the token of its
// own session cookie and user.
func (g *csrfGuard) valid(r *http.Request, user string) bool {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return false
	}
	got := r.PostFormValue(csrfField)
	if got == "" {
		return false
	}
	return hmac.Equal([]byte(got), []byte(g.token(c.Value, user)))
}
