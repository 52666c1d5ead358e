package tunnel

import (
	"bytes"
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// With GRPCServerOptions and GRPCDialOptions, request/response traffic on a
// tunnel connection carries no HTTP/2 PINGs: grpc-go's bandwidth estimator,
// which pings after nearly every data frame it receives, is off. (Keepalive
// pings remain, every PingInterval; none falls within this test.)
func TestGRPCOptionsSendNoBDPPings(t *testing.T) {
	t.Parallel()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lis := &recordingListener{Listener: inner}
	srv := NewServer(ServerOptions{Logger: testLogger(t)})
	gs := grpc.NewServer(GRPCServerOptions()...)
	srv.RegisterGRPC(gs)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = gs.Serve(lis)
	}()
	cc, err := grpc.NewClient(inner.Addr().String(), append(GRPCDialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	reg := NewHandlerRegistry()
	if err := Register(reg, health.NewServer().Check); err != nil {
		t.Fatal(err)
	}
	c := NewGRPCClient(cc, ClientOptions{Name: "pings", Handlers: reg, Logger: testLogger(t)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		srv.Close()
		_ = cc.Close()
		gs.Stop()
		<-served
	})
	waitFor(t, 5*time.Second, func() bool { return srv.Connected("pings") }, "client to connect")

	const calls = 200
	for range calls {
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := Call[*healthpb.HealthCheckResponse](cctx, srv, "pings", &healthpb.HealthCheckRequest{})
		ccancel()
		if err != nil {
			t.Fatal(err)
		}
	}

	in, out := lis.traffic()
	if !bytes.HasPrefix(in, []byte(http2Preface)) {
		t.Fatalf("client->server bytes do not start with the HTTP/2 preface: %q", in[:min(len(in), 32)])
	}
	toServer, toClient := countPings(in[len(http2Preface):]), countPings(out)
	if toServer != 0 || toClient != 0 {
		t.Errorf("%d calls sent %d PINGs to the server and %d to the client; want none (fixed flow-control windows)", calls, toServer, toClient)
	}
}

const http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// countPings counts the PING frames that are not ACKs in a stream of HTTP/2
// frames. A frame cut off at the end (still in flight) is ignored.
func countPings(b []byte) int {
	const frameHeader, typePing, flagAck = 9, 0x6, 0x1
	n := 0
	for len(b) >= frameHeader {
		length := int(b[0])<<16 | int(b[1])<<8 | int(b[2])
		typ, flags := b[3], b[4]
		if len(b) < frameHeader+length {
			break
		}
		if typ == typePing && flags&flagAck == 0 {
			n++
		}
		b = b[frameHeader+length:]
	}
	return n
}

// recordingListener keeps every byte its connections read and write.
type recordingListener struct {
	net.Listener
	mu      sync.Mutex
	in, out bytes.Buffer
}

func (l *recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &recordingConn{Conn: c, l: l}, nil
}

func (l *recordingListener) traffic() (in, out []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.in.Bytes()), bytes.Clone(l.out.Bytes())
}

type recordingConn struct {
	net.Conn
	l *recordingListener
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.l.mu.Lock()
	c.l.in.Write(p[:n])
	c.l.mu.Unlock()
	return n, err
}

func (c *recordingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.l.mu.Lock()
	c.l.out.Write(p[:n])
	c.l.mu.Unlock()
	return n, err
}
