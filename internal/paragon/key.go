package paragon

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// ErrBadSigningKey is wrapped by every ParseSigningKey error. Messages say
// what is wrong with the key but never contain any of its bytes.
var ErrBadSigningKey = errors.New("bad Paragon signing key")

// ParseSigningKey parses the project's signing key: an RSA private key in
// PEM, either PKCS#1 ("BEGIN RSA PRIVATE KEY") or PKCS#8 ("BEGIN PRIVATE
// KEY"); Paragon's docs show both. Literal `\n` sequences (how keys are
// commonly put into one-line environment variables, as Paragon's docs
// describe) are turned back into newlines, and surrounding quotes and
// whitespace are ignored. Keys shorter than 2048 bits are refused.
func ParseSigningKey(text string) (*rsa.PrivateKey, error) {
	s := strings.TrimSpace(text)
	s = strings.Trim(s, `"'`)
	s = strings.ReplaceAll(s, `\r\n`, "\n")
	s = strings.ReplaceAll(s, `\n`, "\n")
	if s == "" {
		return nil, fmt.Errorf("%w: empty", ErrBadSigningKey)
	}
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block found (expected -----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)", ErrBadSigningKey)
	}
	if strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED") {
		// Legacy OpenSSL encryption ("Proc-Type: 4,ENCRYPTED" + DEK-Info).
		return nil, fmt.Errorf("%w: the key is encrypted with a passphrase; export it unencrypted", ErrBadSigningKey)
	}
	var key *rsa.PrivateKey
	switch block.Type {
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: PKCS#1 block does not parse as an RSA private key", ErrBadSigningKey)
		}
		key = k
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: PKCS#8 block does not parse as a private key", ErrBadSigningKey)
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("%w: PKCS#8 key is %T, Paragon User Tokens need an RSA key (RS256)", ErrBadSigningKey, k)
		}
		key = rk
	case "PUBLIC KEY", "RSA PUBLIC KEY", "CERTIFICATE":
		return nil, fmt.Errorf("%w: PEM block is a %s; the relay needs the private signing key", ErrBadSigningKey, strings.ToLower(block.Type))
	case "ENCRYPTED PRIVATE KEY":
		return nil, fmt.Errorf("%w: the key is encrypted with a passphrase; export it unencrypted", ErrBadSigningKey)
	default:
		return nil, fmt.Errorf("%w: unexpected PEM block type %q", ErrBadSigningKey, block.Type)
	}
	if key.N.BitLen() < 2048 {
		return nil, fmt.Errorf("%w: RSA key is %d bits, at least 2048 required", ErrBadSigningKey, key.N.BitLen())
	}
	if err := key.Validate(); err != nil {
		return nil, fmt.Errorf("%w: RSA key fails validation", ErrBadSigningKey)
	}
	return key, nil
}
