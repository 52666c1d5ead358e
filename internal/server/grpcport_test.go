package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	tunnelv1 "github.com/croupier/croupier/api/croupier/tunnel/v1"
	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/certs"
	"github.com/croupier/croupier/internal/tlsconf"
	"github.com/croupier/croupier/internal/tunnel"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// The gRPC port serves the tunnel's conn transport beside gRPC, and admits
// its connections as the edge admits a TunnelService/Connect stream: an
// agent under its own name only.
func TestConnTransportOnTheGRPCPort(t *testing.T) {
	s, bundle, ctx := tlsServer(t)
	tlsFor := func(cert, key string) *tls.Config {
		t.Helper()
		c, err := tlsconf.ClientConfig(bundle.CACert, cert, key, "localhost")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	// gRPC on the same port, with the caller's certificate as before.
	conn, err := grpc.NewClient(s.GRPCAddr(), grpc.WithTransportCredentials(credentials.NewTLS(tlsFor(bundle.ClientCert, bundle.ClientKey))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := croupierv1.NewRegistryServiceClient(conn).ListAgents(ctx, &croupierv1.ListAgentsRequest{}); err != nil {
		t.Fatalf("gRPC beside the conn transport: %v", err)
	}

	// As with gRPC's own TLS credentials, TLS 1.2 suites HTTP/2 forbids are
	// refused.
	cbc := tlsFor(bundle.ClientCert, bundle.ClientKey)
	cbc.MaxVersion, cbc.CipherSuites = tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}
	cbc.NextProtos = []string{"h2"}
	if c, err := tls.Dial("tcp", s.GRPCAddr(), cbc); err == nil {
		_ = c.Close()
		t.Fatal("a TLS 1.2 handshake with only a CBC suite succeeded")
	}

	// The agent's certificate under its own name: connected, and called.
	handlers := tunnel.NewHandlerRegistry()
	if err := tunnel.Register(handlers, func(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
		return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
	}); err != nil {
		t.Fatal(err)
	}
	agentTLS := tlsFor(bundle.AgentCert, bundle.AgentKey)
	agentTLS.NextProtos = []string{tunnel.ConnALPN}
	client := tunnel.NewConnClient(func(ctx context.Context) (net.Conn, error) {
		d := tls.Dialer{Config: agentTLS}
		return d.DialContext(ctx, "tcp", s.GRPCAddr())
	}, tunnel.ClientOptions{Name: certs.DevAgentName, Handlers: handlers, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	cctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = client.Run(cctx) }()
	defer func() { stop(); <-done }()
	for !s.tunnel.Connected(certs.DevAgentName) {
		if ctx.Err() != nil {
			t.Fatal("the agent's conn-transport tunnel never connected")
		}
		time.Sleep(10 * time.Millisecond)
	}
	req, err := anypb.New(&healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.tunnel.CallAny(ctx, certs.DevAgentName, req)
	if err != nil {
		t.Fatalf("call over the conn transport: %v", err)
	}
	var resp healthpb.HealthCheckResponse
	if err := out.UnmarshalTo(&resp); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("response %v (%v)", &resp, err)
	}

	// Refusals come back in the goodbye frame, with the edge's codes.
	for _, tc := range []struct {
		name, as   string
		cert, key  string
		code       codes.Code
		mentioning string
	}{
		{"agent under another name", "agent-z", bundle.AgentCert, bundle.AgentKey, codes.PermissionDenied, `cannot open a tunnel as "agent-z"`},
		{"operator certificate", certs.DevClientName, bundle.ClientCert, bundle.ClientKey, codes.PermissionDenied, "serves agents only"},
		{"no certificate", certs.DevAgentName, "", "", codes.Unauthenticated, "certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tlsFor(bundle.AgentCert, bundle.AgentKey)
			c.Certificates, c.GetClientCertificate = nil, nil
			if tc.cert != "" {
				c = tlsFor(tc.cert, tc.key)
			}
			c.NextProtos = []string{tunnel.ConnALPN}
			st := connHello(t, s.GRPCAddr(), c, tc.as)
			if codes.Code(st.GetCode()) != tc.code || !strings.Contains(st.GetMessage(), tc.mentioning) {
				t.Fatalf("goodbye %v, want %v mentioning %q", st, tc.code, tc.mentioning)
			}
		})
	}
}

// connHello opens a conn-transport connection as name and returns the
// status of the server's goodbye, the first frame it must answer with.
func connHello(t *testing.T, addr string, c *tls.Config, name string) interface {
	GetCode() int32
	GetMessage() string
} {
	t.Helper()
	nc, err := tls.Dial("tcp", addr, c)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	hello, err := proto.Marshal(&tunnelv1.ClientToServer{Frame: &tunnelv1.ClientToServer_Hello{Hello: &tunnelv1.Hello{Name: name, ProtocolVersion: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	b := append([]byte(tunnel.ConnPreface), binary.AppendUvarint(nil, uint64(len(hello)))...)
	if _, err := nc.Write(append(b, hello...)); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(nc)
	n, err := binary.ReadUvarint(r)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	f := make([]byte, n)
	if _, err := io.ReadFull(r, f); err != nil {
		t.Fatal(err)
	}
	var m tunnelv1.ServerToClient
	if err := proto.Unmarshal(f, &m); err != nil {
		t.Fatal(err)
	}
	if m.GetClosed() == nil {
		t.Fatalf("first frame %v, want the goodbye", &m)
	}
	return m.GetClosed()
}
