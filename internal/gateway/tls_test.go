package gateway_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/certs"
	"github.com/croupier/croupier/internal/gateway"
)

// selfSigned writes a certificate for 127.0.0.1 and its key (0600) and
// returns their paths and a pool that trusts it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "gateway test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "gw.crt"), filepath.Join(dir, "gw.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestClientTLS(t *testing.T) {
	t.Parallel()
	certFile, keyFile, pool := selfSigned(t)
	g := startGateway(t, func(c *gateway.Config) { c.ClientTLSCert, c.ClientTLSKey = certFile, keyFile })
	c, status := dialWSStatus(t, g, wsOpts{tls: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}})
	if c == nil {
		t.Fatalf("wss upgrade: HTTP %d", status)
	}
	c.sendText("~3yPvmnz~")
	c.expectData("~u38NvZ~")
}

// croupierCA creates a Croupier CA (croupier certs init) with a server
// certificate for 127.0.0.1 and issues business, agent and client
// certificates, as `croupier certs issue` does.
func croupierCA(t *testing.T) (b *certs.Bundle, pairs map[string]tls.Certificate, pool *x509.CertPool) {
	t.Helper()
	b, err := certs.Init(filepath.Join(t.TempDir(), "certs"), certs.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pairs = map[string]tls.Certificate{}
	for _, req := range []certs.IssueRequest{
		{Kind: certs.KindBusiness, Name: "chat-1"},
		{Kind: certs.KindAgent, Name: "a1", Game: "demo", Env: "dev"},
		{Kind: certs.KindClient, Name: "alice"},
	} {
		certPEM, keyPEM, err := certs.Issue(b.Dir, req)
		if err != nil {
			t.Fatal(err)
		}
		if pairs[string(req.Kind)], err = tls.X509KeyPair(certPEM, keyPEM); err != nil {
			t.Fatal(err)
		}
	}
	caPEM, err := os.ReadFile(b.CACert)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return b, pairs, pool
}

// handshakeErr dials the business listener over TLS with cert (none when
// nil) and returns the handshake's error. With TLS 1.3 the server refuses
// a client certificate after the client's side of the handshake is done,
// so the refusal shows on the first read.
func handshakeErr(t *testing.T, addr string, pool *x509.CertPool, cert *tls.Certificate) error {
	t.Helper()
	cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(ioTimeout))
	_, err = conn.Read(make([]byte, 1))
	return err
}

// The business listener with mTLS: a business with a business certificate
// from Croupier's CA (croupier certs issue business) registers over TLS
// with the unchanged protocol; a business without a certificate, or with
// an agent's or an operator's certificate of the same CA, is refused in
// the handshake. The listener here is on loopback with mTLS configured,
// the same code path as off loopback (where Validate requires it; see
// TestConfigValidate).
func TestBusinessMutualTLS(t *testing.T) {
	t.Parallel()
	b, pairs, pool := croupierCA(t)
	g := startGateway(t, func(c *gateway.Config) {
		c.BusinessTLSCA, c.BusinessTLSCert, c.BusinessTLSKey = b.CACert, b.ServerCert, b.ServerKey
	})
	business := pairs["business"]
	conn, err := tls.Dial("tcp", g.BusinessAddr(), &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{business}, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("business with a business certificate: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	bz := &biz{t: t, conn: conn, r: bufio.NewReader(conn)}
	bz.mustRegister(1)

	if err := handshakeErr(t, g.BusinessAddr(), pool, nil); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("business without a certificate: %v, want a certificate error", err)
	}
	for _, kind := range []string{"agent", "client"} {
		pair := pairs[kind]
		if err := handshakeErr(t, g.BusinessAddr(), pool, &pair); err == nil || !strings.Contains(err.Error(), "bad certificate") {
			t.Errorf("business with a %s certificate: %v, want a bad certificate alert", kind, err)
		}
	}
}
