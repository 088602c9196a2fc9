package paragon_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// One 2048-bit key for the whole package: generating RSA keys is slow.
var testKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

func pkcs1PEM(k *rsa.PrivateKey) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}))
}

func pkcs8PEM(t testing.TB, k any) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// pemBodyLines returns the base64 lines of a PEM text (no BEGIN/END lines).
func pemBodyLines(p string) []string {
	var out []string
	for _, l := range strings.Split(p, "\n") {
		if l == "" || strings.HasPrefix(l, "-----") || strings.Contains(l, ":") {
			continue
		}
		out = append(out, l)
	}
	return out
}

// assertNoKeyMaterial fails if msg contains any line of the PEM body, or any
// 16-character run of it (so a partial line cannot slip through either).
func assertNoKeyMaterial(t *testing.T, msg, pemText string) {
	t.Helper()
	for _, l := range pemBodyLines(pemText) {
		if strings.Contains(msg, l) {
			t.Fatalf("error message contains a line of the key: %q", msg)
		}
		for i := 0; i+16 <= len(l); i += 8 {
			if strings.Contains(msg, l[i:i+16]) {
				t.Fatalf("error message contains key material %q: %q", l[i:i+16], msg)
			}
		}
	}
}

// fakeClock is a settable clock safe for concurrent use.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }
func (c *fakeClock) Set(t time.Time)         { c.ns.Store(t.UnixNano()) }
