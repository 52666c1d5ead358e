package agent

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/certs"
	"github.com/croupier/croupier/internal/tlsconf"
	"github.com/croupier/croupier/internal/tunnel"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// A server whose port speaks gRPC only (an older server, or a proxy that
// speaks HTTP/2 only) refuses the conn transport's ALPN protocol: the
// agent's conn dialer says so with tunnel.ErrConnUnsupported, which moves a
// transport-auto tunnel to the gRPC stream (TestAutoClient in
// internal/tunnel).
func TestConnDialerOnAGRPCOnlyPort(t *testing.T) {
	t.Parallel()
	b, err := certs.EnsureDev(filepath.Join(t.TempDir(), "certs"))
	if err != nil {
		t.Fatal(err)
	}
	stls, err := tlsconf.ServerConfig(b.CACert, b.ServerCert, b.ServerKey, true)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(stls)))
	healthpb.RegisterHealthServer(gs, health.NewServer())
	served := make(chan struct{})
	go func() { defer close(served); _ = gs.Serve(lis) }()
	t.Cleanup(func() { gs.Stop(); <-served })

	ctls, err := tlsconf.ClientConfig(b.CACert, b.AgentCert, b.AgentKey, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(ctls)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := connDialer(cc, ctls)(ctx)
	if err == nil {
		_ = nc.Close()
		t.Fatal("the conn dialer connected to a gRPC-only port")
	}
	t.Logf("conn dial: %v", err)
	if !errors.Is(err, tunnel.ErrConnUnsupported) {
		t.Fatalf("err = %v; want tunnel.ErrConnUnsupported", err)
	}
}
