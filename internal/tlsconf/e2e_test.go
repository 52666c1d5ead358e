package tlsconf_test

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/croupier/croupier/internal/certs"
	"github.com/croupier/croupier/internal/tlsconf"
)

// identityRecorder is a unary interceptor that remembers the certificate
// identity of the last caller, as an auth interceptor would read it.
type identityRecorder struct {
	mu   sync.Mutex
	last certs.Identity
	err  error
}

func (r *identityRecorder) intercept(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	id, err := certs.IdentityFromContext(ctx)
	r.mu.Lock()
	r.last, r.err = id, err
	r.mu.Unlock()
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	return h(ctx, req)
}

func (r *identityRecorder) get() (certs.Identity, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last, r.err
}

// startHealthServer serves the gRPC health service over mTLS on
// 127.0.0.1:0 and stops it when the test ends.
func startHealthServer(t *testing.T, b *certs.Bundle) (string, *identityRecorder) {
	t.Helper()
	cfg, err := tlsconf.ServerConfig(b.CACert, b.ServerCert, b.ServerKey, true)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := &identityRecorder{}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(cfg)), grpc.UnaryInterceptor(rec.intercept))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return lis.Addr().String(), rec
}

func checkHealth(t *testing.T, addr string, cfg *tls.Config) error {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err == nil && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health status %v", resp.GetStatus())
	}
	return err
}

func clientConfig(t *testing.T, ca, cert, key, serverName string) *tls.Config {
	t.Helper()
	cfg, err := tlsconf.ClientConfig(ca, cert, key, serverName)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestGRPCMutualTLS(t *testing.T) {
	t.Parallel()
	b := devCerts(t)
	other := devCerts(t) // a second, unrelated CA
	addr, rec := startHealthServer(t, b)

	t.Run("agent certificate", func(t *testing.T) {
		// serverName empty: gRPC checks the dialled IP against the IP SANs.
		if err := checkHealth(t, addr, clientConfig(t, b.CACert, b.AgentCert, b.AgentKey, "")); err != nil {
			t.Fatalf("Check: %v", err)
		}
		id, err := rec.get()
		want := certs.Identity{Kind: certs.KindAgent, Name: certs.DevAgentName, Game: "poker", Env: "prod"}
		if err != nil || id != want {
			t.Errorf("server saw %+v, %v; want %+v", id, err, want)
		}
	})

	t.Run("operator client certificate", func(t *testing.T) {
		if err := checkHealth(t, addr, clientConfig(t, b.CACert, b.ClientCert, b.ClientKey, "localhost")); err != nil {
			t.Fatalf("Check: %v", err)
		}
		if id, err := rec.get(); err != nil || id.Kind != certs.KindClient || id.Name != certs.DevClientName {
			t.Errorf("server saw %+v, %v", id, err)
		}
	})

	refused := []struct {
		name string
		cfg  *tls.Config
	}{
		{"no client certificate", clientConfig(t, b.CACert, "", "", "localhost")},
		{"certificate from another CA", clientConfig(t, b.CACert, other.AgentCert, other.AgentKey, "localhost")},
		{"server certificate used as client", clientConfig(t, b.CACert, b.ServerCert, b.ServerKey, "localhost")},
		{"client does not trust the server's CA", clientConfig(t, other.CACert, other.AgentCert, other.AgentKey, "localhost")},
		{"server name not in certificate", clientConfig(t, b.CACert, b.AgentCert, b.AgentKey, "elsewhere.example")},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			err := checkHealth(t, addr, tc.cfg)
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("Check error = %v, want the handshake to fail (Unavailable)", err)
			}
		})
	}
}

func TestTLS13Negotiated(t *testing.T) {
	t.Parallel()
	b := devCerts(t)
	scfg, err := tlsconf.ServerConfig(b.CACert, b.ServerCert, b.ServerKey, true)
	if err != nil {
		t.Fatal(err)
	}
	ccfg := clientConfig(t, b.CACert, b.AgentCert, b.AgentKey, "localhost")
	lis, err := tls.Listen("tcp", "127.0.0.1:0", scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	accepted := make(chan error, 1)
	go func() {
		c, err := lis.Accept()
		if err == nil {
			err = c.(*tls.Conn).Handshake()
			c.Close()
		}
		accepted <- err
	}()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", lis.Addr().String(), ccfg)
	if err != nil {
		t.Fatal(err)
	}
	v := conn.ConnectionState().Version
	conn.Close()
	if err := <-accepted; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	if v != tls.VersionTLS13 {
		t.Errorf("negotiated %x, want TLS 1.3", v)
	}
}
