package tunnel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// autoPort is a server's port as croupier's gRPC port is: the conn
// transport and gRPC (with the stream transport) on one listener. streams
// counts the TunnelService/Connect streams the gRPC side served, connects
// the connections the server accepted (either transport).
type autoPort struct {
	srv               *Server
	addr              string
	cc                *grpc.ClientConn
	streams, connects atomic.Int32
}

func startAutoPort(t *testing.T) *autoPort {
	t.Helper()
	p := &autoPort{}
	p.srv = NewServer(ServerOptions{Logger: testLogger(t), OnConnect: func(string) { p.connects.Add(1) }})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = lis.Addr().String()
	mux := NewConnMux(lis, p.srv)
	gs := grpc.NewServer(append(GRPCServerOptions(), grpc.StreamInterceptor(
		func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			p.streams.Add(1)
			return h(srv, ss)
		}))...)
	p.srv.RegisterGRPC(gs)
	ctx, cancel := context.WithCancel(context.Background())
	muxDone, gsDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(muxDone); _ = mux.Serve(ctx) }()
	go func() { defer close(gsDone); _ = gs.Serve(mux.Other()) }()
	if p.cc, err = grpc.NewClient(p.addr, append(GRPCDialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.srv.Close()
		_ = p.cc.Close()
		gs.Stop()
		_ = mux.Close()
		cancel()
		<-muxDone
		<-gsDone
	})
	return p
}

// run runs c until the test ends.
func runUntilCleanup(t *testing.T, c *Client) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// An auto client uses the conn transport where the server offers it, and
// moves to the gRPC stream for good when its dialer says the server does
// not (ErrConnUnsupported) or when told to (UseStream); other dial failures
// are retried on the conn transport.
func TestAutoClient(t *testing.T) {
	t.Parallel()
	opts := func(name string, onConnected func(context.Context)) ClientOptions {
		return ClientOptions{Name: name, Handlers: NewHandlerRegistry(), Logger: testLogger(t), OnConnected: onConnected,
			MinBackoff: 10 * time.Millisecond, MaxBackoff: 10 * time.Millisecond}
	}
	var d net.Dialer
	check := func(t *testing.T, p *autoPort, name string, c *Client, wantStream bool) {
		t.Helper()
		waitFor(t, 10*time.Second, func() bool { return p.srv.Connected(name) }, "%s to connect", name)
		if c.OnStream() != wantStream {
			t.Fatalf("OnStream = %v, want %v", c.OnStream(), wantStream)
		}
		want := int32(0)
		if wantStream {
			want = 1
		}
		if n := p.streams.Load(); n != want {
			t.Fatalf("%d TunnelService/Connect streams served, want %d", n, want)
		}
		// A call goes through either way.
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := Call[*healthpb.HealthCheckResponse](cctx, p.srv, name, &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatalf("a call over the tunnel: %v", err)
		}
	}

	t.Run("conn where the server offers it, after transient failures", func(t *testing.T) {
		t.Parallel()
		p := startAutoPort(t)
		var dials atomic.Int32
		c := NewAutoClient(func(ctx context.Context) (net.Conn, error) {
			if dials.Add(1) <= 2 {
				return nil, errors.New("connection refused")
			}
			return d.DialContext(ctx, "tcp", p.addr)
		}, p.cc, opts("a1", nil))
		registerHealth(c)
		runUntilCleanup(t, c)
		check(t, p, "a1", c, false)
		if n := dials.Load(); n != 3 {
			t.Fatalf("%d dials, want 3", n)
		}
	})

	t.Run("the stream where the server does not", func(t *testing.T) {
		t.Parallel()
		p := startAutoPort(t)
		var dials atomic.Int32
		c := NewAutoClient(func(context.Context) (net.Conn, error) {
			dials.Add(1)
			return nil, fmt.Errorf("%w: the TLS handshake agreed on ALPN \"h2\"", ErrConnUnsupported)
		}, p.cc, opts("a2", nil))
		registerHealth(c)
		runUntilCleanup(t, c)
		check(t, p, "a2", c, true)
		if n := dials.Load(); n != 1 {
			t.Fatalf("%d conn dials, want 1 (then the stream, for good)", n)
		}
	})

	t.Run("the stream when told to", func(t *testing.T) {
		t.Parallel()
		p := startAutoPort(t)
		sessions := make(chan context.Context, 4)
		c := NewAutoClient(func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", p.addr) }, p.cc,
			opts("a3", func(ctx context.Context) { sessions <- ctx }))
		registerHealth(c)
		runUntilCleanup(t, c)
		check(t, p, "a3", c, false)
		first := <-sessions
		why := errors.New("registrations keep reaching another node")
		if !c.UseStream(why) || c.UseStream(why) {
			t.Fatal("UseStream moved the client other than exactly once")
		}
		if !c.Reconnect(first, why) {
			t.Fatal("Reconnect: the first connection was not the current one")
		}
		// The stream's hello replaced the conn connection once the server
		// accepted it: calls go to the stream from then on.
		waitFor(t, 10*time.Second, func() bool { return p.connects.Load() == 2 }, "the tunnel to come back on the stream")
		check(t, p, "a3", c, true)
	})

	if NewConnClient(nil, opts("x", nil)).UseStream(errors.New("x")) {
		t.Fatal("UseStream moved a conn client")
	}
}

// registerHealth makes c answer grpc.health.v1 checks, for a call to go
// through the tunnel.
func registerHealth(c *Client) {
	_ = Register(c.opts.Handlers, func(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
		return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
	})
}
