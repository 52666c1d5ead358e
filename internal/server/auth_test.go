package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/certs"
	"github.com/croupier/croupier/internal/config"
	"github.com/croupier/croupier/internal/tlsconf"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// The principal of a client certificate is remembered per connection
// (certPrincipals), but revoking the certificate still refuses the very
// next call on that connection, and cuts a stream it has open.
func TestRevokedCertificateRefusedOnOpenConnection(t *testing.T) {
	s, bundle, ctx := tlsServer(t)
	ctls, err := tlsconf.ClientConfig(bundle.CACert, bundle.ClientCert, bundle.ClientKey, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(s.GRPCAddr(), grpc.WithTransportCredentials(credentials.NewTLS(ctls)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rc := croupierv1.NewRegistryServiceClient(conn)
	for range 3 { // the first call caches the principal, the others use it
		if _, err := rc.ListAgents(ctx, &croupierv1.ListAgentsRequest{}); err != nil {
			t.Fatalf("before revocation: %v", err)
		}
	}
	wctx, stopWatch := context.WithTimeout(ctx, 10*time.Second) // a stream not cut fails the test in 10 s
	defer stopWatch()
	watch, err := rc.WatchRegistrations(wctx, &croupierv1.WatchRegistrationsRequest{GameId: "demo", Env: "dev"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Recv(); err != nil { // the end of the (empty) snapshot
		t.Fatalf("watch before revocation: %v", err)
	}
	serial := certSerial(t, bundle.ClientCert)
	if _, err := croupierv1.NewCertificateServiceClient(conn).RevokeCertificate(ctx,
		&croupierv1.RevokeCertificateRequest{Serial: serial, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	_, err = rc.ListAgents(ctx, &croupierv1.ListAgentsRequest{})
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(status.Convert(err).Message(), "serial "+serial+") is revoked") {
		t.Fatalf("after revocation: %v, want UNAUTHENTICATED naming the revoked serial", err)
	}
	if _, err := watch.Recv(); status.Code(err) != codes.Unauthenticated || !strings.Contains(status.Convert(err).Message(), "serial "+serial+") is revoked") {
		t.Fatalf("a stream opened before the revocation: %v, want it cut UNAUTHENTICATED naming the revoked serial", err)
	}
}

// tlsServer starts a server with TLS on port 0 and the dev certificates
// (the client certificate acts as operator "operator", an administrator);
// ctx bounds the test.
func tlsServer(t *testing.T) (*Server, *certs.Bundle, context.Context) {
	t.Helper()
	dir := t.TempDir()
	bundle, err := certs.EnsureDev(filepath.Join(dir, "certs"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.DefaultServer()
	cfg.DataDir, cfg.GRPCAddr, cfg.HTTPAddr, cfg.TunnelHTTPAddr = dir, "127.0.0.1:0", "127.0.0.1:0", ""
	cfg.Scopes = []string{"demo/dev"}
	cfg.AdminUser, cfg.AdminPassword = "operator", "test-password-1"
	s, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	return s, bundle, ctx
}

// certSerial is the hex serial of the certificate in the PEM file at path.
func certSerial(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s holds no PEM block", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber.Text(16)
}

// TestLoginThrottleFromConfig: the server's login throttle takes its
// settings from the configuration — with login_user_free 2, the attempt
// after two wrong passwords in a row waits (RESOURCE_EXHAUSTED,
// RATE_LIMITED), even with the right password, which is not checked; the
// default would let five wrong ones through.
func TestLoginThrottleFromConfig(t *testing.T) {
	s, conn, _ := testServer(t, func(c *config.Server) { c.LoginUserFree, c.LoginBaseWait = 2, time.Minute })
	userToken(t, s, "carol", "", "")
	authc := croupierv1.NewAuthServiceClient(conn)
	for i := range 2 {
		_, err := authc.Login(context.Background(), &croupierv1.LoginRequest{Username: "carol", Password: "wrong-password"})
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("wrong password %d: %v, want UNAUTHENTICATED", i+1, err)
		}
	}
	_, err := authc.Login(context.Background(), &croupierv1.LoginRequest{Username: "carol", Password: "correct-horse-battery"})
	if status.Code(err) != codes.ResourceExhausted || apierr.Info(err).GetCode() != apierr.CodeRateLimited {
		t.Fatalf("third attempt after two failures: %v, want RESOURCE_EXHAUSTED / RATE_LIMITED", err)
	}
}

// tokenClient is a connection to s over TLS without a client certificate:
// its calls authenticate with bearer tokens.
func tokenClient(t *testing.T, s *Server, bundle *certs.Bundle) *grpc.ClientConn {
	t.Helper()
	caPEM, err := os.ReadFile(bundle.CACert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	conn, err := grpc.NewClient(s.GRPCAddr(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "localhost"})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// A stream opened with a bearer token ends when its login session is
// revoked: here by a logout through the same server, which says why
// (UNAUTHENTICATED, TOKEN_REVOKED).
func TestTokenStreamEndsAtLogout(t *testing.T) {
	s, bundle, ctx := tlsServer(t)
	conn := tokenClient(t, s, bundle)
	ac := croupierv1.NewAuthServiceClient(conn)
	toks, err := ac.Login(ctx, &croupierv1.LoginRequest{Username: "operator", Password: "test-password-1"})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stopWatch := context.WithTimeout(ctx, 10*time.Second) // a stream not cut fails the test in 10 s
	defer stopWatch()
	wctx = metadata.AppendToOutgoingContext(wctx, "authorization", "Bearer "+toks.GetAccessToken())
	watch, err := croupierv1.NewRegistryServiceClient(conn).WatchRegistrations(wctx, &croupierv1.WatchRegistrationsRequest{GameId: "demo", Env: "dev"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Recv(); err != nil { // the end of the (empty) snapshot
		t.Fatalf("watch before logout: %v", err)
	}
	if _, err := ac.Logout(ctx, &croupierv1.LogoutRequest{RefreshToken: toks.GetRefreshToken()}); err != nil {
		t.Fatal(err)
	}
	_, err = watch.Recv()
	if status.Code(err) != codes.Unauthenticated || apierr.Info(err).GetCode() != "TOKEN_REVOKED" {
		t.Fatalf("a stream opened before the logout: %v, want it cut UNAUTHENTICATED TOKEN_REVOKED", err)
	}
}

// TestStreamEndsWhenItsRoleIsRevoked: a WatchRegistrations stream opened
// with a viewer's token ends PERMISSION_DENIED when the RevokeRole RPC takes
// away the role that let it open, though the viewer's session lives on.
func TestStreamEndsWhenItsRoleIsRevoked(t *testing.T) {
	s, bundle, ctx := tlsServer(t)
	conn := tokenClient(t, s, bundle)
	ac := croupierv1.NewAuthServiceClient(conn)
	bearer := func(ctx context.Context, user, password string) context.Context {
		t.Helper()
		toks, err := ac.Login(ctx, &croupierv1.LoginRequest{Username: user, Password: password})
		if err != nil {
			t.Fatal(err)
		}
		return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+toks.GetAccessToken())
	}
	admin := bearer(ctx, "operator", "test-password-1")
	users := croupierv1.NewUserServiceClient(conn)
	if _, err := users.CreateUser(admin, &croupierv1.CreateUserRequest{Username: "vera", Password: "vera-password-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := users.GrantRole(admin, &croupierv1.GrantRoleRequest{Username: "vera", Role: "viewer", Scope: "game:demo/*"}); err != nil {
		t.Fatal(err)
	}
	wctx, stopWatch := context.WithTimeout(ctx, 10*time.Second) // a stream not cut fails the test in 10 s
	defer stopWatch()
	watch, err := croupierv1.NewRegistryServiceClient(conn).WatchRegistrations(bearer(wctx, "vera", "vera-password-1"),
		&croupierv1.WatchRegistrationsRequest{GameId: "demo", Env: "dev"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Recv(); err != nil { // the end of the (empty) snapshot
		t.Fatalf("watch before the revocation: %v", err)
	}
	ended := make(chan error, 1)
	go func() {
		_, err := watch.Recv()
		ended <- err
	}()
	if _, err := users.RevokeRole(admin, &croupierv1.RevokeRoleRequest{Username: "vera", Role: "viewer", Scope: "game:demo/*"}); err != nil {
		t.Fatal(err)
	}
	// RevokeRole cuts the stream before it returns (the cut then only
	// crosses loopback); the server's periodic check (every 10 s) would
	// too, later, so the wait stays far below that. auth's
	// TestHeldStreamsEndWhenTheirRoleIsRevoked checks the cut without a
	// periodic check at all.
	select {
	case err = <-ended:
	case <-time.After(time.Second):
		t.Fatal("the stream still runs 1 s after RevokeRole returned")
	}
	if status.Code(err) != codes.PermissionDenied || apierr.Info(err).GetCode() != "PERMISSION_DENIED" ||
		!strings.Contains(status.Convert(err).Message(), "registry:read denied on game:demo/env:dev") {
		t.Fatalf("a stream opened before its role was revoked: %v, want it cut PERMISSION_DENIED on registry:read", err)
	}
}
