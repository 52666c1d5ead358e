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

// testCA issues certificates for the business mTLS test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	dir  string
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{cert: cert, key: key, dir: t.TempDir()}
	if err := os.WriteFile(filepath.Join(ca.dir, "ca.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return ca
}

// issue writes name.crt and name.key signed by the CA and returns the pair.
func (ca *testCA) issue(t *testing.T, name string, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalECPrivateKey(key)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})
	_ = os.WriteFile(filepath.Join(ca.dir, name+".crt"), certPEM, 0o644)
	_ = os.WriteFile(filepath.Join(ca.dir, name+".key"), keyPEM, 0o600)
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

// The business listener with mTLS: a business with a certificate from the
// CA registers over TLS with the unchanged protocol; one without is refused
// in the handshake.
func TestBusinessMutualTLS(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	ca.issue(t, "gateway", x509.ExtKeyUsageServerAuth)
	business := ca.issue(t, "business", x509.ExtKeyUsageClientAuth)
	g := startGateway(t, func(c *gateway.Config) {
		c.BusinessTLSCA = filepath.Join(ca.dir, "ca.crt")
		c.BusinessTLSCert, c.BusinessTLSKey = filepath.Join(ca.dir, "gateway.crt"), filepath.Join(ca.dir, "gateway.key")
	})
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)

	conn, err := tls.Dial("tcp", g.BusinessAddr(), &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{business}, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("business with a CA certificate: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	b := &biz{t: t, conn: conn, r: bufio.NewReader(conn)}
	b.mustRegister(1)

	anon, err := tls.Dial("tcp", g.BusinessAddr(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err == nil {
		// TLS 1.3 reports the refused client certificate on the first read.
		_ = anon.SetReadDeadline(time.Now().Add(ioTimeout))
		_, err = anon.Read(make([]byte, 1))
		_ = anon.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("business without a certificate: %v, want a certificate error", err)
	}
}
