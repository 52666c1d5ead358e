package gateway_test

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	llibtls "github.com/lesismal/llib/std/crypto/tls"

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

// poisonAllocator is the TLS library's buffer allocator with a free that
// overwrites the buffer, as a pool does when it hands the buffer to another
// connection.
type poisonAllocator struct{ llibtls.NativeAllocator }

func (*poisonAllocator) Free(b *[]byte) {
	for i := range *b {
		(*b)[i] = 0xEE
	}
}

// The gateway's wss listener decrypts with nbio's TLS library in
// non-blocking mode, its buffers from a pool shared by every connection.
// llib v1.2.2 returned a record's buffer to that pool before the record's
// plaintext was read, so another connection could overwrite it: the race
// detector caught a WebSocket parse on one gateway writing the plaintext a
// wss connection on another was reading. With an allocator whose free
// poisons the buffer, every byte a client sends must still read back as
// sent.
func TestTLSPlaintextOutlivesFreedRecordBuffer(t *testing.T) {
	t.Parallel()
	certFile, keyFile, pool := selfSigned(t)
	cert, err := llibtls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const records = 50
	want := make([]byte, 0, records*1000)
	for i := 0; i < records; i++ {
		want = append(want, bytes.Repeat([]byte{byte('a' + i%26)}, 1000)...)
	}
	clientErr := make(chan error, 1)
	go func() {
		conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
		if err != nil {
			clientErr <- err
			return
		}
		defer conn.Close()
		for i := 0; i < records; i++ { // one TLS record per write
			if _, err := conn.Write(want[i*1000 : (i+1)*1000]); err != nil {
				clientErr <- err
				return
			}
		}
		clientErr <- nil
		_, _ = io.Copy(io.Discard, conn) // until the server closes
	}()
	raw, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(ioTimeout))
	server := llibtls.NewConn(raw, &llibtls.Config{Certificates: []llibtls.Certificate{cert}}, false, true, &poisonAllocator{})
	var got []byte
	in, out := make([]byte, 4096), make([]byte, 4096)
	for len(got) < len(want) {
		n, err := raw.Read(in)
		if err != nil {
			t.Fatalf("after %d of %d plaintext bytes: %v", len(got), len(want), err)
		}
		for appendIn := in[:n]; ; appendIn = nil {
			_, m, err := server.AppendAndRead(appendIn, out)
			if err != nil {
				t.Fatal(err)
			}
			if m == 0 {
				break
			}
			got = append(got, out[:m]...)
		}
	}
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && got[i] == want[i] {
			i++
		}
		t.Fatalf("plaintext differs from byte %d of %d: got %q, want %q", i, len(want), got[i:min(i+8, len(got))], want[i:i+8])
	}
	if err := <-clientErr; err != nil {
		t.Fatal(err)
	}
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

// A business certificate on the revocation list (Gateway.CheckRevoked, as
// `croupier gateway` wires the list of its database) is refused in the
// handshake; another business certificate of the CA still registers, and
// once it is revoked too, CloseRevoked cuts its connection.
func TestBusinessRevokedCertificate(t *testing.T) {
	t.Parallel()
	b, pairs, pool := croupierCA(t)
	certPEM, keyPEM, err := certs.Issue(b.Dir, certs.IssueRequest{Kind: certs.KindBusiness, Name: "chat-2"})
	if err != nil {
		t.Fatal(err)
	}
	revokedPair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(revokedPair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	cfg := gateway.DefaultConfig()
	cfg.ClientAddr, cfg.BusinessAddr, cfg.ServerID = "127.0.0.1:0", "127.0.0.1:0", 7
	cfg.BusinessTLSCA, cfg.BusinessTLSCert, cfg.BusinessTLSKey = b.CACert, b.ServerCert, b.ServerKey
	g, err := gateway.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	revoked := map[string]bool{certs.Serial(leaf): true}
	g.CheckRevoked(func(serial string) bool { mu.Lock(); defer mu.Unlock(); return revoked[serial] })
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)

	if err := handshakeErr(t, g.BusinessAddr(), pool, &revokedPair); err == nil || !strings.Contains(err.Error(), "bad certificate") {
		t.Errorf("business with a revoked certificate: %v, want a bad certificate alert", err)
	}
	conn, err := tls.Dial("tcp", g.BusinessAddr(), &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pairs["business"]}, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("business with a certificate not revoked: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	bz := &biz{t: t, conn: conn, r: bufio.NewReader(conn)}
	bz.mustRegister(1)
	if n := g.CloseRevoked(); n != 0 {
		t.Fatalf("CloseRevoked closed %d connections before any of theirs was revoked", n)
	}
	live, err := x509.ParseCertificate(pairs["business"].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	revoked[certs.Serial(live)] = true
	mu.Unlock()
	if n := g.CloseRevoked(); n != 1 {
		t.Fatalf("CloseRevoked closed %d connections, want the business's 1", n)
	}
	_ = conn.SetReadDeadline(time.Now().Add(ioTimeout))
	if _, err := io.ReadAll(bz.r); err != nil {
		t.Fatalf("the revoked business's connection: %v, want it closed by the gateway (EOF)", err)
	}
}
