package tlsconf_test

import (
	"context"
	"crypto/tls"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/certs"
	"github.com/croupier/croupier/internal/tlsconf"
)

func devCerts(t *testing.T) *certs.Bundle {
	t.Helper()
	b, err := certs.Init(filepath.Join(t.TempDir(), "certs"), certs.InitOptions{Game: "poker", Env: "prod"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestServerConfigClientAuthModes(t *testing.T) {
	t.Parallel()
	b := devCerts(t)
	tests := []struct {
		ca      string
		require bool
		want    tls.ClientAuthType
	}{
		{b.CACert, true, tls.RequireAndVerifyClientCert},
		{b.CACert, false, tls.VerifyClientCertIfGiven},
		{"", false, tls.NoClientCert},
	}
	for _, tc := range tests {
		cfg, err := tlsconf.ServerConfig(tc.ca, b.ServerCert, b.ServerKey, tc.require)
		if err != nil {
			t.Fatalf("ServerConfig(%q, %v): %v", tc.ca, tc.require, err)
		}
		if cfg.ClientAuth != tc.want || cfg.MinVersion != tls.VersionTLS12 {
			t.Errorf("ServerConfig(%q, %v): ClientAuth %v MinVersion %x", tc.ca, tc.require, cfg.ClientAuth, cfg.MinVersion)
		}
	}
	if _, err := tlsconf.ServerConfig("", b.ServerCert, b.ServerKey, true); err == nil {
		t.Error("requiring client certs without a CA succeeded")
	}
}

func TestConfigErrorsNameTheFile(t *testing.T) {
	t.Parallel()
	b := devCerts(t)
	missing := filepath.Join(t.TempDir(), "nope.crt")
	garbage := filepath.Join(t.TempDir(), "garbage.crt")
	if err := os.WriteFile(garbage, []byte("not pem"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		fn   func() error
		file string
	}{
		{"server CA missing", func() error { _, err := tlsconf.ServerConfig(missing, b.ServerCert, b.ServerKey, true); return err }, missing},
		{"server CA garbage", func() error { _, err := tlsconf.ServerConfig(garbage, b.ServerCert, b.ServerKey, true); return err }, garbage},
		{"server cert missing", func() error { _, err := tlsconf.ServerConfig(b.CACert, missing, b.ServerKey, true); return err }, missing},
		{"server key missing", func() error { _, err := tlsconf.ServerConfig(b.CACert, b.ServerCert, missing, true); return err }, missing},
		{"server key mismatched", func() error { _, err := tlsconf.ServerConfig(b.CACert, b.ServerCert, b.AgentKey, true); return err }, b.ServerCert},
		{"client CA missing", func() error { _, err := tlsconf.ClientConfig(missing, b.AgentCert, b.AgentKey, ""); return err }, missing},
		{"client cert missing", func() error { _, err := tlsconf.ClientConfig(b.CACert, missing, b.AgentKey, ""); return err }, missing},
		{"client cert garbage", func() error { _, err := tlsconf.ClientConfig(b.CACert, garbage, b.AgentKey, ""); return err }, garbage},
	}
	for _, tc := range tests {
		err := tc.fn()
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.file) || !strings.Contains(err.Error(), "croupier certs init") {
			t.Errorf("%s: error %q should name %s and suggest croupier certs init", tc.name, err, tc.file)
		}
	}
	if _, err := tlsconf.ClientConfig(b.CACert, b.AgentCert, "", ""); err == nil {
		t.Error("client cert without key accepted")
	}
}

func TestExpiredCertificateRefused(t *testing.T) {
	t.Parallel()
	b := devCerts(t)
	// NotAfter is stored with second precision, so a nanosecond of validity
	// yields a certificate that has already expired.
	certPEM, keyPEM, err := certs.Issue(b.Dir, certs.IssueRequest{Kind: certs.KindServer, Hosts: []string{"localhost"}, Validity: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	c, k := filepath.Join(b.Dir, "old.crt"), filepath.Join(b.Dir, "old.key")
	if err := certs.WriteKeyPair(c, k, certPEM, keyPEM, false); err != nil {
		t.Fatal(err)
	}
	_, err = tlsconf.ServerConfig(b.CACert, c, k, true)
	if err == nil || !strings.Contains(err.Error(), "expired") || !strings.Contains(err.Error(), c) {
		t.Fatalf("error = %v, want one saying %s expired", err, c)
	}
}

// handshake runs a TLS handshake over an in-memory pipe and returns the
// serial number of the certificate the server presented.
func handshake(t *testing.T, server, client *tls.Config) (*big.Int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	srvErr := make(chan error, 1)
	go func() {
		srvErr <- tls.Server(a, server).HandshakeContext(ctx)
		a.Close() // unblock the client if the server gave up
	}()
	cc := tls.Client(b, client)
	cerr := cc.HandshakeContext(ctx)
	b.Close()
	if serr := <-srvErr; serr != nil && cerr == nil {
		cerr = serr
	}
	if cerr != nil {
		return nil, cerr
	}
	return cc.ConnectionState().PeerCertificates[0].SerialNumber, nil
}

func TestCertificateRotationWithoutRestart(t *testing.T) {
	t.Parallel()
	b := devCerts(t)
	scfg, err := tlsconf.ServerConfig(b.CACert, b.ServerCert, b.ServerKey, true)
	if err != nil {
		t.Fatal(err)
	}
	ccfg, err := tlsconf.ClientConfig(b.CACert, b.AgentCert, b.AgentKey, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	first, err := handshake(t, scfg, ccfg)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}

	// A half-done rotation (new key, old certificate) keeps serving the old pair.
	certPEM, keyPEM, err := certs.Issue(b.Dir, certs.IssueRequest{Kind: certs.KindServer, Hosts: []string{"localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b.ServerKey+".new", keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(b.ServerKey+".new", b.ServerKey); err != nil {
		t.Fatal(err)
	}
	mid, err := handshake(t, scfg, ccfg)
	if err != nil {
		t.Fatalf("handshake during rotation: %v", err)
	}
	if mid.Cmp(first) != 0 {
		t.Errorf("serial changed mid-rotation: %v -> %v", first, mid)
	}

	// Completing the rotation is picked up by the next handshake.
	if err := certs.WriteKeyPair(b.ServerCert, b.ServerKey, certPEM, keyPEM, true); err != nil {
		t.Fatal(err)
	}
	second, err := handshake(t, scfg, ccfg)
	if err != nil {
		t.Fatalf("handshake after rotation: %v", err)
	}
	if second.Cmp(first) == 0 {
		t.Error("server still presents the old certificate after rotation")
	}
}
