package main

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/paragon-outbox/outbox-relay/internal/paragon"
)

func TestKeygenWritesAKeyPair(t *testing.T) {
	dir := t.TempDir()
	priv := filepath.Join(dir, "k.pem")
	pub := filepath.Join(dir, "k.pub.pem")
	code, stdout, stderr := runCmd(t, "keygen", "-out", priv)
	if code != 0 {
		t.Fatalf("code %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "warning: "+priv+" is a private signing key and must not be committed") {
		t.Errorf("no warning against committing the key: %q", stderr)
	}
	for path, mode := range map[string]os.FileMode{priv: 0o600, pub: 0o644} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", path, st.Mode().Perm(), mode)
		}
	}
	privPEM, err := os.ReadFile(priv)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(privPEM), "-----BEGIN PRIVATE KEY-----\n") {
		t.Fatalf("private key is not PKCS#8 PEM: %.30q", privPEM)
	}
	key, err := paragon.ParseSigningKey(string(privPEM)) // what the relay loads
	if err != nil {
		t.Fatal(err)
	}
	if key.N.BitLen() != 2048 {
		t.Errorf("%d-bit key, want 2048", key.N.BitLen())
	}
	pubPEM, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pubPEM)
	if block == nil || block.Type != "PUBLIC KEY" {
		t.Fatalf("public key file is not a PUBLIC KEY PEM")
	}
	pk, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if rk, ok := pk.(*rsa.PublicKey); !ok || !rk.Equal(&key.PublicKey) {
		t.Fatal("public key is not the private key's public half")
	}
	// paragon-local verifies with the public file; the relay signs with the
	// private one: a token signed with one verifies with the other.
	if got, err := readPublicKey(pub); err != nil || !got.Equal(&key.PublicKey) {
		t.Fatalf("readPublicKey: %v", err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(privPEM)), "\n")[1:5] {
		if strings.Contains(stdout+stderr, l) {
			t.Fatal("keygen printed key material")
		}
	}
	if !strings.Contains(stdout, "PARAGON_SIGNING_KEY_FILE="+priv) {
		t.Errorf("stdout does not say how to use the key:\n%s", stdout)
	}
}

func TestKeygenNeverOverwrites(t *testing.T) {
	for _, existing := range []string{"k.pem", "k.pub.pem"} {
		t.Run(existing, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, existing)
			if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
				t.Fatal(err)
			}
			code, _, stderr := runCmd(t, "keygen", "-out", filepath.Join(dir, "k.pem"))
			if code != 1 || !strings.Contains(stderr, path+" already exists") {
				t.Fatalf("code %d, stderr %q", code, stderr)
			}
			if b, _ := os.ReadFile(path); string(b) != "precious" {
				t.Fatal("existing file changed")
			}
			ents, _ := os.ReadDir(dir)
			if len(ents) != 1 {
				t.Fatalf("keygen left %d files, want only the existing one", len(ents))
			}
		})
	}
}

func TestKeygenBadInvocation(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"keygen", "-bits", "1024", "-out", filepath.Join(dir, "a.pem")},
		{"keygen", "-out", ""},
		{"keygen", "extra"},
	} {
		if code, _, stderr := runCmd(t, args...); code != 2 || !strings.Contains(stderr, "usage") {
			t.Errorf("%v: code %d, stderr %q", args, code, stderr)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("a refused invocation wrote %d files", len(ents))
	}
	// A directory that does not exist: a clear error, nothing written.
	code, _, stderr := runCmd(t, "keygen", "-out", filepath.Join(dir, "missing", "k.pem"))
	if code != 1 || !strings.Contains(stderr, "no such file or directory") {
		t.Fatalf("code %d, stderr %q", code, stderr)
	}
}

// TestGitignoreCoversKeygensDefaultFiles: keygen's default files, written
// into the current directory (in a clone: the repository root), are
// ignored by the repository's .gitignore.
func TestGitignoreCoversKeygensDefaultFiles(t *testing.T) {
	gi, err := os.ReadFile("../../.gitignore")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{keygenDefaultOut, strings.TrimSuffix(keygenDefaultOut, ".pem") + ".pub.pem"} {
		ignored := false
		for line := range strings.SplitSeq(string(gi), "\n") {
			if ok, _ := filepath.Match(strings.TrimPrefix(strings.TrimSpace(line), "/"), name); ok && !strings.HasPrefix(line, "#") {
				ignored = true
			}
		}
		if !ignored {
			t.Errorf(".gitignore does not ignore %s", name)
		}
	}
}
