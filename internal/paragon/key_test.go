package paragon_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"github.com/paragon-outbox/outbox-relay/internal/paragon"
)

func TestParseSigningKeyAccepts(t *testing.T) {
	k := testKey()
	p1 := pkcs1PEM(k)
	p8 := pkcs8PEM(t, k)
	oneLine := func(s string) string { return strings.ReplaceAll(s, "\n", `\n`) }
	oneLineCRLF := func(s string) string { return strings.ReplaceAll(s, "\n", `\r\n`) }

	cases := []struct {
		name, text string
	}{
		{"pkcs1", p1},
		{"pkcs8", p8},
		{"pkcs1 one line literal \\n", oneLine(p1)},
		{"pkcs8 one line literal \\n", oneLine(p8)},
		{"pkcs8 one line literal \\r\\n", oneLineCRLF(p8)},
		{"double quoted one line", `"` + oneLine(p8) + `"`},
		{"single quoted one line", `'` + oneLine(p1) + `'`},
		{"surrounding whitespace", "\n\t  " + p8 + "  \n\n"},
		{"quotes and whitespace", "  \"" + oneLine(p1) + "\"\n"},
		{"real CRLF line endings", strings.ReplaceAll(p8, "\n", "\r\n")},
		{"no trailing newline", strings.TrimSuffix(p1, "\n")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := paragon.ParseSigningKey(tc.text)
			if err != nil {
				t.Fatalf("ParseSigningKey: %v", err)
			}
			if !got.Equal(k) {
				t.Fatal("parsed key differs from the original")
			}
		})
	}
}

func TestParseSigningKeyRejects(t *testing.T) {
	k := testKey()
	p1 := pkcs1PEM(k)
	p8 := pkcs8PEM(t, k)
	if len(pemBodyLines(p1)) < 20 || len(pemBodyLines(p8)) < 20 {
		t.Fatal("test premise: the leak check needs the PEM body lines")
	}

	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecPEM := pkcs8PEM(t, ec)
	_, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPEM := pkcs8PEM(t, edPriv)
	ecSEC1, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	ecSEC1PEM := string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecSEC1}))

	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	smallPEM := pkcs1PEM(small)

	pubDER, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))
	rsaPubPEM := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.PublicKey)}))

	// Truncated: drop the second half of the body lines but keep a valid
	// PEM frame, so it is the DER that is short.
	lines := strings.Split(strings.TrimSuffix(p1, "\n"), "\n")
	body := lines[1 : len(lines)-1]
	truncated := lines[0] + "\n" + strings.Join(body[:len(body)/2], "\n") + "\n" + lines[len(lines)-1] + "\n"
	// Truncated mid-file: the END line is missing.
	cut := p8[:len(p8)/2]
	// Corrupted: one base64 character of the modulus changed (still valid
	// base64, so the PEM frame decodes and the key maths must catch it).
	corrupt := []byte(p1)
	second := len(lines[0]) + 1 + len(body[0]) + 1 + 10 // 10th char of the 2nd body line: inside N
	if corrupt[second] == 'A' {
		corrupt[second] = 'B'
	} else {
		corrupt[second] = 'A'
	}
	// Corrupted base64: a character outside the alphabet.
	badB64 := []byte(p8)
	badB64[strings.Index(p8, "\n")+5] = '*'

	// Legacy OpenSSL encryption: "Proc-Type: 4,ENCRYPTED" headers.
	//lint:ignore SA1019 producing the deprecated format on purpose: users have such files.
	encBlock, err := x509.EncryptPEMBlock(rand.Reader, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k), []byte("passphrase"), x509.PEMCipherAES256) //nolint:staticcheck
	if err != nil {
		t.Fatal(err)
	}
	legacyEnc := string(pem.EncodeToMemory(encBlock))
	// PKCS#8 encryption ("BEGIN ENCRYPTED PRIVATE KEY"); the parser decides
	// on the block type, so the body only has to be base64.
	pkcs8Enc := string(pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte(strings.Repeat("x", 600))}))

	cases := []struct {
		name, text string
		want       string // substring of the message
		keyText    string // PEM whose body must not appear in the message
	}{
		{"empty", "", "empty", ""},
		{"whitespace only", " \n\t ", "empty", ""},
		{"quotes only", `""`, "empty", ""},
		{"garbage", "this is not a key", "no PEM block", ""},
		{"base64 without frame", strings.Join(body, "\n"), "no PEM block", p1},
		{"public key", pubPEM, "public key", pubPEM},
		{"rsa public key", rsaPubPEM, "rsa public key", rsaPubPEM},
		{"EC PKCS#8", ecPEM, "RSA", ecPEM},
		{"Ed25519 PKCS#8", edPEM, "RSA", edPEM},
		{"EC SEC1", ecSEC1PEM, "unexpected PEM block type", ecSEC1PEM},
		{"1024-bit RSA", smallPEM, "1024 bits", smallPEM},
		{"truncated body", truncated, "PKCS#1", p1},
		{"truncated file", cut, "no PEM block", p8},
		{"corrupted body", string(corrupt), "", p1},
		{"bad base64", string(badB64), "no PEM block", p8},
		{"PKCS#1 labelled as PKCS#8", strings.ReplaceAll(p1, "RSA PRIVATE KEY", "PRIVATE KEY"), "PKCS#8", p1},
		{"PKCS#8 labelled as PKCS#1", strings.ReplaceAll(p8, "PRIVATE KEY", "RSA PRIVATE KEY"), "PKCS#1", p8},
		{"legacy encrypted (Proc-Type)", legacyEnc, "encrypted", legacyEnc},
		{"PKCS#8 encrypted", pkcs8Enc, "encrypted", pkcs8Enc},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := paragon.ParseSigningKey(tc.text)
			if err == nil {
				t.Fatalf("ParseSigningKey accepted it (key of %d bits)", got.N.BitLen())
			}
			if !errors.Is(err, paragon.ErrBadSigningKey) {
				t.Fatalf("error %q does not wrap ErrBadSigningKey", err)
			}
			if got != nil {
				t.Fatal("non-nil key returned with an error")
			}
			if tc.want != "" && !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			if tc.keyText != "" {
				assertNoKeyMaterial(t, err.Error(), tc.keyText)
			}
			// The 2048-bit key's material must never show either.
			assertNoKeyMaterial(t, err.Error(), p1)
			assertNoKeyMaterial(t, err.Error(), p8)
		})
	}
}
