package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// keygenDefaultOut is where keygen writes the private key by default; the
// public key goes beside it with ".pub.pem" instead of ".pem".
const keygenDefaultOut = "paragon-signing-key.pem"

// runKeygen writes a new RSA signing key pair: the private key as PKCS#8 PEM
// ("BEGIN PRIVATE KEY", the form Paragon's dashboard shows) with mode 0600,
// and its public half as PKIX PEM ("BEGIN PUBLIC KEY") with mode 0644. It
// never overwrites a file: when either exists it fails and writes nothing.
// The key itself is never printed.
func runKeygen(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("outbox-relay keygen", flag.ContinueOnError)
	fl.SetOutput(stderr)
	out := fl.String("out", keygenDefaultOut, "private key file to create (PKCS#8 PEM, mode 0600); the public key goes to the same name ending .pub.pem (mode 0644)")
	bits := fl.Int("bits", 2048, "RSA key size: 2048, 3072 or 4096")
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("%w: keygen takes no arguments, got %q", errUsage, fl.Args())
	}
	if *bits != 2048 && *bits != 3072 && *bits != 4096 {
		return fmt.Errorf("%w: -bits %d: use 2048, 3072 or 4096", errUsage, *bits)
	}
	if *out == "" {
		return fmt.Errorf("%w: -out is empty", errUsage)
	}
	privPath := *out
	pubPath := strings.TrimSuffix(privPath, ".pem") + ".pub.pem"
	for _, p := range []string{privPath, pubPath} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s already exists: keygen never overwrites a key (move it away or choose another -out)", p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: %w", p, err)
		}
	}

	key, err := rsa.GenerateKey(rand.Reader, *bits)
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode private key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return fmt.Errorf("encode public key: %w", err)
	}
	if err := writeNewFile(privPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), 0o600); err != nil {
		return err
	}
	if err := writeNewFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		_ = os.Remove(privPath) // no half-written pair
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (RSA %d-bit private signing key, PKCS#8 PEM, mode 0600)\n", privPath, *bits)
	fmt.Fprintf(stdout, "wrote %s (its public key, PEM, mode 0644)\n", pubPath)
	fmt.Fprintf(stdout, "use it with: PARAGON_SIGNING_KEY_FILE=%s (relay, doctor, token, paragon-local)\n", privPath)
	fmt.Fprintf(stderr, "outbox-relay keygen: warning: %s is a private signing key and must not be committed (this repository's .gitignore ignores *.pem); keep it in a secret store\n", privPath)
	return nil
}

// writeNewFile creates path (failing if it exists), writes b and sets mode
// exactly (not filtered by the umask). On failure nothing is left behind.
func writeNewFile(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s already exists: keygen never overwrites a key", path)
		}
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
