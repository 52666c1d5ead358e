package certs_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/certs"
)

func TestIdentityFromRequest(t *testing.T) {
	t.Parallel()
	b := mustInit(t, certs.InitOptions{Game: "poker", Env: "prod"})
	serverPair, err := tls.LoadX509KeyPair(b.ServerCert, b.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	roots := caPool(t, b)

	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := certs.IdentityFromRequest(r)
		if err != nil {
			if !errors.Is(err, certs.ErrNoIdentity) {
				t.Errorf("unexpected error kind: %v", err)
			}
			http.Error(w, "no identity", http.StatusUnauthorized)
			return
		}
		io.WriteString(w, id.String())
	}))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{serverPair},
		ClientCAs:    roots,
		ClientAuth:   tls.VerifyClientCertIfGiven,
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	get := func(clientCerts []tls.Certificate) (int, string) {
		t.Helper()
		c := &http.Client{
			Timeout: 10 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{
				RootCAs: roots, ServerName: "localhost", Certificates: clientCerts,
			}},
		}
		defer c.CloseIdleConnections()
		resp, err := c.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	agentPair, err := tls.LoadX509KeyPair(b.AgentCert, b.AgentKey)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := get([]tls.Certificate{agentPair}); code != http.StatusOK || body != "croupier://agent/dev-agent?game=poker&env=prod" {
		t.Errorf("with agent cert: %d %q", code, body)
	}
	if code, _ := get(nil); code != http.StatusUnauthorized {
		t.Errorf("without client cert: status %d, want 401", code)
	}
}

func TestIdentityFromTLSNeedsVerifiedChain(t *testing.T) {
	t.Parallel()
	b := mustInit(t, certs.InitOptions{})
	agent := readCert(t, b.AgentCert)
	// A certificate the peer sent but nobody verified is not an identity.
	cs := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{agent}}
	if _, err := certs.IdentityFromTLS(cs); !errors.Is(err, certs.ErrNoIdentity) {
		t.Errorf("unverified peer cert: %v, want ErrNoIdentity", err)
	}
	cs.VerifiedChains = [][]*x509.Certificate{{agent}}
	if id, err := certs.IdentityFromTLS(cs); err != nil || id.Kind != certs.KindAgent {
		t.Errorf("verified chain: %+v, %v", id, err)
	}
	if _, err := certs.IdentityFromTLS(nil); !errors.Is(err, certs.ErrNoIdentity) {
		t.Errorf("plaintext: %v", err)
	}
	if _, err := certs.IdentityFromContext(context.Background()); !errors.Is(err, certs.ErrNoIdentity) {
		t.Errorf("context without peer: %v", err)
	}
}

// TestNodePeers serves TLS as the node listeners do and connects with
// certificates the CA issues: the client certificate named as a node peer
// is admitted; another operator's, an agent's and a business process's are
// refused in the handshake, and so is a node's whose serial is revoked.
func TestNodePeers(t *testing.T) {
	t.Parallel()
	b := mustInit(t, certs.InitOptions{})
	gw2Cert, gw2Key, err := certs.Issue(filepath.Dir(b.CACert), certs.IssueRequest{Kind: certs.KindClient, Name: "gw-2"})
	if err != nil {
		t.Fatal(err)
	}
	gw2, err := tls.X509KeyPair(gw2Cert, gw2Key)
	if err != nil {
		t.Fatal(err)
	}
	gw2Leaf, err := x509.ParseCertificate(gw2.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	revoked := func(serial string) bool { return serial == certs.Serial(gw2Leaf) }
	serverPair, err := tls.LoadX509KeyPair(b.ServerCert, b.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	roots := caPool(t, b)
	lis, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{serverPair}, ClientCAs: roots,
		ClientAuth: tls.RequireAndVerifyClientCert, VerifyConnection: certs.NodePeers([]string{certs.DevClientName, "gw-2"}, revoked)})
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	go func() { // answers one byte to each connection that gets through the handshake
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				if c.(*tls.Conn).Handshake() == nil {
					_, _ = c.Write([]byte{1})
				}
			}()
		}
	}()
	bizCert, bizKey, err := certs.Issue(filepath.Dir(b.CACert), certs.IssueRequest{Kind: certs.KindBusiness, Name: "chat-1"})
	if err != nil {
		t.Fatal(err)
	}
	pair := func(cert, key string) tls.Certificate {
		p, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	biz, err := tls.X509KeyPair(bizCert, bizKey)
	if err != nil {
		t.Fatal(err)
	}
	aliceCert, aliceKey, err := certs.Issue(filepath.Dir(b.CACert), certs.IssueRequest{Kind: certs.KindClient, Name: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	alice, err := tls.X509KeyPair(aliceCert, aliceKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		cert  tls.Certificate
		admit bool
	}{
		{"client " + certs.DevClientName, pair(b.ClientCert, b.ClientKey), true},
		{"client gw-2, revoked", gw2, false},
		{"client alice", alice, false},
		{"agent", pair(b.AgentCert, b.AgentKey), false},
		{"business", biz, false},
	} {
		c, err := tls.Dial("tcp", lis.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "localhost", Certificates: []tls.Certificate{tc.cert}})
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = c.Read(make([]byte, 1)) // the server's verdict comes after the client's handshake (TLS 1.3)
		c.Close()
		if admitted := err == nil; admitted != tc.admit {
			t.Errorf("%s certificate: admitted %v (%v), want %v", tc.name, admitted, err, tc.admit)
		}
	}
}
