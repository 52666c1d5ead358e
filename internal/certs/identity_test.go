package certs_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net/url"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/certs"
)

func TestIdentityURIRoundTrip(t *testing.T) {
	t.Parallel()
	for _, id := range []certs.Identity{
		{Kind: certs.KindAgent, Name: "a.b_c-1", Game: "poker", Env: "prod"},
		{Kind: certs.KindClient, Name: "alice"},
		{Kind: certs.KindServer, Name: "s1"},
	} {
		u, err := url.Parse(id.String())
		if err != nil {
			t.Fatal(err)
		}
		got, err := certs.ParseIdentityURI(u)
		if err != nil || got != id {
			t.Errorf("%s: got %+v, %v", id, got, err)
		}
	}
}

func TestParseIdentityURIRejects(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"spiffe://agent/a?game=g&env=e",
		"croupier://robot/a",
		"croupier://agent/a",                        // agent without scope
		"croupier://agent/a?game=g",                 // no env
		"croupier://agent/?game=g&env=e",            // no name
		"croupier://agent/a/b?game=g&env=e",         // name with slash
		"croupier://agent/a?game=g&env=e&region=eu", // unknown parameter
		"croupier://agent/a?game=g&game=h&env=e",    // repeated parameter
		"croupier://client/c?game=g&env=e",          // scope on a client
		"croupier://user@agent/a?game=g&env=e",
		"croupier://agent:1/a?game=g&env=e",
		"croupier://agent/a?game=g&env=e#x",
	} {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if id, err := certs.ParseIdentityURI(u); err == nil {
			t.Errorf("%s accepted as %+v", s, id)
		}
	}
}

// selfSigned makes a certificate with the given URIs and key usage; only its
// fields matter to IdentityFromCert.
func selfSigned(t *testing.T, uris []string, eku x509.ExtKeyUsage) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "t"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{eku},
	}
	for _, s := range uris {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestIdentityFromCert(t *testing.T) {
	t.Parallel()
	const agent = "croupier://agent/a?game=g&env=e"
	tests := []struct {
		name string
		uris []string
		eku  x509.ExtKeyUsage
		ok   bool
	}{
		{"agent", []string{agent}, x509.ExtKeyUsageClientAuth, true},
		{"foreign URI beside ours", []string{"spiffe://x/y", agent}, x509.ExtKeyUsageClientAuth, true},
		{"no URI", nil, x509.ExtKeyUsageClientAuth, false},
		{"only foreign URI", []string{"spiffe://x/y"}, x509.ExtKeyUsageClientAuth, false},
		{"two identities", []string{agent, "croupier://client/c"}, x509.ExtKeyUsageClientAuth, false},
		{"agent with server usage", []string{agent}, x509.ExtKeyUsageServerAuth, false},
		{"server with client usage", []string{"croupier://server/s"}, x509.ExtKeyUsageClientAuth, false},
		{"malformed identity", []string{"croupier://agent/a"}, x509.ExtKeyUsageClientAuth, false},
	}
	for _, tc := range tests {
		_, err := certs.IdentityFromCert(selfSigned(t, tc.uris, tc.eku))
		if tc.ok && err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		if !tc.ok && !errors.Is(err, certs.ErrNoIdentity) {
			t.Errorf("%s: error %v, want ErrNoIdentity", tc.name, err)
		}
	}
	if _, err := certs.IdentityFromCert(nil); !errors.Is(err, certs.ErrNoIdentity) {
		t.Errorf("nil cert: %v", err)
	}
}
