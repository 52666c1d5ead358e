package revocation_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/certs"
	"github.com/croupier/croupier/internal/revocation"
	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/store/storetest"
	"github.com/croupier/croupier/internal/tlsconf"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// TestNodeListenerRefusesRevokedCertificates serves a gRPC listener as the
// gateway's node listeners are served (mTLS, certs.NodePeers with the
// list, ServerOptions) and revokes the node certificate a connection uses:
// a stream it opened before is cut, its next unary call and its next
// stream are refused with CERTIFICATE_REVOKED, and a new connection is
// refused in the handshake.
func TestNodeListenerRefusesRevokedCertificates(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := certs.Init(t.TempDir(), certs.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st := storetest.SQLite(t)
	list := revocation.New(st.Revocations(), slog.New(slog.DiscardHandler))
	stop, err := list.Follow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	stls, err := tlsconf.ServerConfig(b.CACert, b.ServerCert, b.ServerKey, true)
	if err != nil {
		t.Fatal(err)
	}
	stls.VerifyConnection = certs.NodePeers([]string{certs.DevClientName}, list.Revoked)
	gs := grpc.NewServer(append(list.ServerOptions(), grpc.Creds(credentials.NewTLS(stls)))...)
	healthpb.RegisterHealthServer(gs, health.NewServer())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- gs.Serve(ln) }()
	defer func() { gs.Stop(); <-served }()

	dial := func() healthpb.HealthClient {
		ctls, err := tlsconf.ClientConfig(b.CACert, b.ClientCert, b.ClientKey, "localhost")
		if err != nil {
			t.Fatal(err)
		}
		conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(ctls)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		return healthpb.NewHealthClient(conn)
	}
	watch := func(c healthpb.HealthClient) error {
		w, err := c.Watch(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			return err
		}
		_, err = w.Recv()
		return err
	}
	c := dial()
	if _, err := c.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("Check before the revocation: %v", err)
	}
	if err := watch(c); err != nil {
		t.Fatalf("Watch before the revocation: %v", err)
	}
	// A stream opened before the revocation and still open when the list
	// learns of it is cut.
	openCtx, stopOpen := context.WithTimeout(ctx, 10*time.Second) // a stream not cut fails the test in 10 s
	defer stopOpen()
	open, err := c.Watch(openCtx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := open.Recv(); err != nil {
		t.Fatalf("Watch before the revocation: %v", err)
	}

	serial := clientSerial(t, b)
	if err := st.Revocations().Revoke(ctx, store.RevokedCertificate{Serial: serial, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if list.Revoked(serial) {
		t.Fatal("the list knew of the revocation before it reloaded")
	}
	if err := list.Load(ctx); err != nil { // what Follow does every Refresh
		t.Fatal(err)
	}
	if _, err := open.Recv(); status.Code(err) != codes.Unauthenticated || apierr.Info(err).GetCode() != apierr.CodeCertificateRevoked {
		t.Errorf("Watch opened before the revocation: %v, want UNAUTHENTICATED %s", err, apierr.CodeCertificateRevoked)
	}
	_, err = c.Check(ctx, &healthpb.HealthCheckRequest{})
	if status.Code(err) != codes.Unauthenticated || apierr.Info(err).GetCode() != apierr.CodeCertificateRevoked {
		t.Errorf("Check on the connection made before the revocation: %v, want UNAUTHENTICATED %s", err, apierr.CodeCertificateRevoked)
	}
	if err := watch(c); status.Code(err) != codes.Unauthenticated {
		t.Errorf("Watch on the connection made before the revocation: %v, want UNAUTHENTICATED", err)
	}
	if _, err := dial().Check(ctx, &healthpb.HealthCheckRequest{}); status.Code(err) != codes.Unavailable {
		t.Errorf("Check on a new connection: %v, want UNAVAILABLE (refused in the handshake)", err)
	}

	// A node starting later loads the list before it serves.
	later := revocation.New(st.Revocations(), slog.New(slog.DiscardHandler))
	stopLater, err := later.Follow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stopLater()
	if !later.Revoked(serial) {
		t.Error("Follow returned before the list was loaded")
	}
}

// TestFollowReloads: Follow picks up a revocation stored by another node
// at its next reload, and then calls its reloaded functions (the gateway
// cuts its revoked business connections there).
func TestFollowReloads(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st := storetest.SQLite(t)
	list := revocation.New(st.Revocations(), slog.New(slog.DiscardHandler))
	reloaded := make(chan bool, 1)
	stop, err := list.FollowEvery(ctx, 10*time.Millisecond, func() {
		select {
		case reloaded <- list.Revoked("abc"):
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if err := st.Revocations().Revoke(ctx, store.RevokedCertificate{Serial: "abc", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case saw := <-reloaded:
			if saw {
				return // the reload that followed the revocation
			}
		case <-ctx.Done():
			t.Fatal("no reload saw the revocation within 30 s")
		}
	}
}

// TestNilListRefusesNothing: a node without a database has no list.
func TestNilListRefusesNothing(t *testing.T) {
	var list *revocation.List
	if list.Revoked("1f") {
		t.Error("a nil list revoked a serial")
	}
}

func clientSerial(t *testing.T, b *certs.Bundle) string {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(b.ClientCert, b.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return certs.Serial(leaf)
}
