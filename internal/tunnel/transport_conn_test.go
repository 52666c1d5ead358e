package tunnel

import (
	"bufio"
	"context"
	"encoding/binary"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	tunnelv1 "github.com/croupier/croupier/api/croupier/tunnel/v1"
)

// TestConnMuxSharesAPort serves gRPC and the conn transport on one
// listener, as the agent's SDK port does: a gRPC client and a tunnel client
// both work, and closing the gRPC server's listener stops the mux.
func TestConnMuxSharesAPort(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(ServerOptions{Logger: testLogger(t)})
	defer srv.Close()
	mux := NewConnMux(lis, srv)
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, health.NewServer())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	muxDone, grpcDone := make(chan error, 1), make(chan error, 1)
	go func() { muxDone <- mux.Serve(ctx) }()
	go func() { grpcDone <- gs.Serve(mux.Other()) }()

	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
	defer ccancel()
	if _, err := healthpb.NewHealthClient(cc).Check(cctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("gRPC through the mux: %v", err)
	}

	reg := NewHandlerRegistry()
	if err := Register(reg, health.NewServer().Check); err != nil {
		t.Fatal(err)
	}
	var d net.Dialer
	c := NewConnClient(func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", lis.Addr().String()) },
		ClientOptions{Name: "gs-1", Handlers: reg, Logger: testLogger(t)})
	runDone := make(chan error, 1)
	go func() { runDone <- c.Run(ctx) }()
	waitFor(t, 5*time.Second, func() bool { return srv.Connected("gs-1") }, "the conn client to connect")
	resp, err := Call[*healthpb.HealthCheckResponse](cctx, srv, "gs-1", &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("tunnel call through the mux = %v, %v", resp, err)
	}

	gs.GracefulStop() // closes mux.Other, which closes the mux
	if err := <-grpcDone; err != nil {
		t.Fatalf("gRPC Serve = %v", err)
	}
	srv.Close() // ends the served tunnel connection, so Serve can return
	within(t, 5*time.Second, "the mux to stop", func() {
		if err := <-muxDone; err != nil {
			t.Errorf("mux Serve = %v, want nil after Close", err)
		}
	})
	cancel()
	<-runDone
}

// rawConn dials the conn transport by hand and sends the preface, for tests
// that play a misbehaving client.
func rawConn(t *testing.T, srv *Server) (net.Conn, *bufio.Reader) {
	t.Helper()
	return rawConnCtx(t, context.Background(), srv)
}

// rawConnCtx is rawConn with the context ServeConn runs under.
func rawConnCtx(t *testing.T, ctx context.Context, srv *Server) (net.Conn, *bufio.Reader) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		nc, err := lis.Accept()
		_ = lis.Close()
		if err == nil {
			_ = srv.ServeConn(ctx, nc)
		}
	}()
	nc, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = nc.Close()
		srv.Close()
		<-served
	})
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Write([]byte(ConnPreface)); err != nil {
		t.Fatal(err)
	}
	return nc, bufio.NewReader(nc)
}

// readGoodbye reads the server's frames until its goodbye and returns the
// goodbye's status.
func readGoodbye(t *testing.T, r *bufio.Reader) *status.Status {
	t.Helper()
	l := &connLink{r: r, maxFrame: DefaultMaxFrameBytes}
	for range 10 {
		f := new(tunnelv1.ServerToClient)
		if err := l.readFrame(f); err != nil {
			t.Fatalf("no goodbye before the connection ended: %v", err)
		}
		if st := f.GetClosed(); st != nil {
			return status.FromProto(st)
		}
	}
	t.Fatal("no goodbye in 10 frames")
	return nil
}

// TestConnRefusesOversizedFrames: a length beyond the frame limit ends the
// connection before anything is read or allocated for it, and the client is
// told why. Before the hello the limit is minFrameBytes (4 KiB), whatever
// the server's: a peer that has not said who it is gets no larger buffer.
func TestConnRefusesOversizedFrames(t *testing.T) {
	srv := NewServer(ServerOptions{Logger: testLogger(t), MaxFrameBytes: 64 << 10})
	nc, r := rawConn(t, srv)
	if _, err := nc.Write(binary.AppendUvarint(nil, 8<<10)); err != nil {
		t.Fatal(err)
	}
	st := readGoodbye(t, r)
	if st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "8192 bytes exceeds the limit of 4096") {
		t.Fatalf("goodbye %v, want RESOURCE_EXHAUSTED naming the size and the hello's limit", st)
	}
}

// TestConnRefusesMalformedFrames: bytes that are not a frame end the
// connection with INVALID_ARGUMENT.
func TestConnRefusesMalformedFrames(t *testing.T) {
	srv := NewServer(ServerOptions{Logger: testLogger(t)})
	nc, r := rawConn(t, srv)
	body := []byte{0xff, 0xff, 0xff} // a field with a truncated varint tag
	if _, err := nc.Write(append(binary.AppendUvarint(nil, uint64(len(body))), body...)); err != nil {
		t.Fatal(err)
	}
	if st := readGoodbye(t, r); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "malformed frame") {
		t.Fatalf("goodbye %v, want INVALID_ARGUMENT malformed frame", st)
	}
}

// sendFrame writes f, padded with an unknown field of pad bytes, as one
// conn-transport frame.
func sendFrame(t *testing.T, nc net.Conn, f *tunnelv1.ClientToServer, pad int) {
	t.Helper()
	b, err := proto.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if pad > 0 {
		b = protowire.AppendBytes(protowire.AppendTag(b, 1000, protowire.BytesType), make([]byte, pad))
	}
	if _, err := nc.Write(append(binary.AppendUvarint(nil, uint64(len(b))), b...)); err != nil {
		t.Fatal(err)
	}
}

// TestConnHelloAndTheEnd: a well-formed hello is welcomed; after it, frames
// up to the server's limit (beyond the hello's 4 KiB) are read; when ctx
// ends, the client's last frame is a goodbye with UNAVAILABLE.
func TestConnHelloAndTheEnd(t *testing.T) {
	srv := NewServer(ServerOptions{Logger: testLogger(t)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nc, r := rawConnCtx(t, ctx, srv)
	hello, err := proto.Marshal(&tunnelv1.ClientToServer{Frame: &tunnelv1.ClientToServer_Hello{Hello: &tunnelv1.Hello{
		Name: "gs-1", MaxInFlight: 1, ProtocolVersion: protocolVersion}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Write(append(binary.AppendUvarint(nil, uint64(len(hello))), hello...)); err != nil {
		t.Fatal(err)
	}
	l := &connLink{r: r, maxFrame: DefaultMaxFrameBytes}
	f := new(tunnelv1.ServerToClient)
	if err := l.readFrame(f); err != nil || f.GetWelcome() == nil {
		t.Fatalf("first frame %v, %v; want the welcome", f, err)
	}
	waitFor(t, 5*time.Second, func() bool { return srv.Connected("gs-1") }, "the raw client to be connected")
	sendFrame(t, nc, &tunnelv1.ClientToServer{Frame: &tunnelv1.ClientToServer_Ping{Ping: &tunnelv1.Ping{Nonce: 7}}}, 16<<10)
	for {
		f := new(tunnelv1.ServerToClient)
		if err := l.readFrame(f); err != nil {
			t.Fatalf("waiting for the pong to a 16 KiB ping: %v", err)
		}
		if f.GetPong().GetNonce() == 7 {
			break
		}
	}
	cancel()
	if st := readGoodbye(t, r); st.Code() != codes.Unavailable {
		t.Fatalf("goodbye %v, want UNAVAILABLE", st)
	}
}

// acceptSignal reports each connection its listener accepts.
type acceptSignal struct {
	net.Listener
	accepted chan struct{}
}

func (l acceptSignal) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err == nil {
		l.accepted <- struct{}{}
	}
	return nc, err
}

// TestConnMuxCloseDoesNotWaitForSilentConns: a connection that never sends
// its first bytes does not hold Serve up after Close (it waited for the
// preface timeout, 10 s, and with it the agent's shutdown).
func TestConnMuxCloseDoesNotWaitForSilentConns(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(ServerOptions{Logger: testLogger(t)})
	defer srv.Close()
	accepted := make(chan struct{}, 1)
	mux := NewConnMux(acceptSignal{lis, accepted}, srv)
	done := make(chan error, 1)
	go func() { done <- mux.Serve(context.Background()) }()
	silent, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	within(t, 5*time.Second, "the mux to accept the silent connection", func() { <-accepted })
	start := time.Now()
	_ = mux.Close()
	within(t, 5*time.Second, "Serve to return after Close", func() {
		if err := <-done; err != nil {
			t.Errorf("Serve = %v, want nil", err)
		}
	})
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Serve returned %s after Close; want well under the 10 s preface timeout", d)
	}
	_ = silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := silent.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("read %d bytes, %v; want the silent connection closed", n, err)
	}
}

// TestConnMuxAdmit: Admit decides before the hello is read — a refusal
// reaches the client in the goodbye, an admitted connection is served in
// the context Admit returned (Authorize sees it), and Admit's done learns
// why the connection ended.
func TestConnMuxAdmit(t *testing.T) {
	type key struct{}
	srv := NewServer(ServerOptions{Logger: testLogger(t), Authorize: func(ctx context.Context, name string) error {
		if ctx.Value(key{}) != name {
			return status.Errorf(codes.PermissionDenied, "admitted as %v, not %q", ctx.Value(key{}), name)
		}
		return nil
	}})
	defer srv.Close()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := NewConnMux(lis, srv)
	admitted, ended := make(chan struct{}, 4), make(chan error, 4)
	var conns atomic.Int32
	mux.Admit = func(ctx context.Context, nc net.Conn) (context.Context, func(error), error) {
		if conns.Add(1) == 1 {
			return nil, nil, status.Error(codes.Unauthenticated, "no credential on this connection")
		}
		admitted <- struct{}{}
		return context.WithValue(ctx, key{}, "gs-1"), func(err error) { ended <- err }, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	muxDone := make(chan error, 1)
	go func() { muxDone <- mux.Serve(ctx) }()

	// Refused: the goodbye carries Admit's error.
	nc, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := nc.Write([]byte(ConnPreface)); err != nil {
		t.Fatal(err)
	}
	f := new(tunnelv1.ServerToClient)
	if err := (&connLink{nc: nc, r: bufio.NewReader(nc), maxFrame: 1 << 20}).readFrame(f); err != nil {
		t.Fatal(err)
	}
	if st := f.GetClosed(); codes.Code(st.GetCode()) != codes.Unauthenticated || !strings.Contains(st.GetMessage(), "no credential") {
		t.Fatalf("first frame %v, want the goodbye with Admit's refusal", f)
	}

	// Admitted: Authorize sees Admit's context; done runs when it ends.
	reg := NewHandlerRegistry()
	var d net.Dialer
	c := NewConnClient(func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", lis.Addr().String()) },
		ClientOptions{Name: "gs-1", Handlers: reg, Logger: testLogger(t)})
	cctx, ccancel := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- c.Run(cctx) }()
	waitFor(t, 5*time.Second, func() bool { return srv.Connected("gs-1") }, "the admitted client to connect")
	<-admitted
	select {
	case err := <-ended:
		t.Fatalf("done ran while the connection lives: %v", err)
	default:
	}
	ccancel()
	<-runDone
	within(t, 5*time.Second, "done to run when the connection ends", func() {
		if err := <-ended; status.Code(err) != codes.Unavailable {
			t.Errorf("done(%v), want UNAVAILABLE (the client went away)", err)
		}
	})
	_ = mux.Close()
	within(t, 5*time.Second, "the mux to stop", func() { <-muxDone })
}
