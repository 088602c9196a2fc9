package console

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// authenticator checks HTTP basic auth against one user:password or an
// htpasswd file of bcrypt hashes. A nil *authenticator lets everyone in
// (loopback without auth).
type authenticator struct {
	user string   // single-user mode
	pass [32]byte // sha256 of the password (constant-time compare)
	// hashes maps user -> bcrypt hash (htpasswd mode).
	hashes map[string][]byte
	// verified remembers credentials bcrypt accepted (by their SHA-256), so
	// that a page's every request does not pay a bcrypt run (~70 ms, seconds
	// on a loaded machine). Only successes are kept.
	mu       sync.Mutex
	verified map[[32]byte]string
}

// dummyHash is compared against for unknown users so that a wrong user name
// takes as long as a wrong password: bcrypt (cost 10) of a fixed text,
// written out rather than computed at package init, which would delay every
// outbox-relay process's start (and its SIGTERM handler) by a bcrypt run.
var dummyHash = []byte("$2a$10$1dwY7j4DFqKlZ3taOXNmbOXI/xoacckvOEePqGeiqyN9zLmUBOqUq")

// newAuthenticator builds the authenticator of c, or nil without auth.
// Errors name the file and line, never a hash or password.
func newAuthenticator(c Config) (*authenticator, error) {
	switch {
	case c.BasicAuth != "":
		u, p, _ := strings.Cut(c.BasicAuth, ":")
		return &authenticator{user: u, pass: sha256.Sum256([]byte(p))}, nil
	case c.BasicAuthFile != "":
		return loadHtpasswd(c.BasicAuthFile)
	}
	return nil, nil
}

func loadHtpasswd(path string) (*authenticator, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: CONSOLE_BASIC_AUTH_FILE: %v", ErrConfig, err)
	}
	defer f.Close()
	a := &authenticator{hashes: map[string][]byte{}, verified: map[[32]byte]string{}}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		u, h, ok := strings.Cut(line, ":")
		if !ok || u == "" {
			return nil, fmt.Errorf("%w: CONSOLE_BASIC_AUTH_FILE %s line %d is not user:hash", ErrConfig, path, n)
		}
		if _, err := bcrypt.Cost([]byte(h)); err != nil {
			return nil, fmt.Errorf("%w: CONSOLE_BASIC_AUTH_FILE %s line %d (user %q): only bcrypt hashes are accepted (make them with htpasswd -B)", ErrConfig, path, n, u)
		}
		a.hashes[u] = []byte(h)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: CONSOLE_BASIC_AUTH_FILE %s: %v", ErrConfig, path, err)
	}
	if len(a.hashes) == 0 {
		return nil, fmt.Errorf("%w: CONSOLE_BASIC_AUTH_FILE %s has no user", ErrConfig, path)
	}
	return a, nil
}

// check returns the user name if r carries valid credentials.
func (a *authenticator) check(r *http.Request) (string, bool) {
	u, p, ok := r.BasicAuth()
	if !ok {
		return "", false
	}
	if a.hashes == nil {
		sum := sha256.Sum256([]byte(p))
		okUser := subtle.ConstantTimeCompare([]byte(u), []byte(a.user)) == 1
		okPass := subtle.ConstantTimeCompare(sum[:], a.pass[:]) == 1
		return u, okUser && okPass
	}
	key := sha256.Sum256([]byte(u + "\x00" + p))
	a.mu.Lock()
	who, seen := a.verified[key]
	a.mu.Unlock()
	if seen {
		return who, true
	}
	h, known := a.hashes[u]
	if !known {
		_ = bcrypt.CompareHashAndPassword(dummyHash, []byte(p))
		return "", false
	}
	if bcrypt.CompareHashAndPassword(h, []byte(p)) != nil {
		return "", false
	}
	a.mu.Lock()
	if len(a.verified) < 1000 {
		a.verified[key] = u
	}
	a.mu.Unlock()
	return u, true
}
