package certs_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
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
