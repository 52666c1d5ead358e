package tunnel

import (
	"context"
	"net"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// The benchmarks compare a tunnel round trip (server -> client -> handler ->
// back) with a plain unary gRPC call on loopback and with the least the
// stream transport can cost, a bare exchange on an open gRPC stream
// (grpc-stream). All do the same work: grpc_health_v1 Check against a
// health.Server. Run with
//
//	go test -run '^$' -bench . -benchtime 2s ./internal/tunnel/
//
// Latency runs one call at a time and reports p50/p99; throughput runs 64
// concurrent callers and reports calls/s and the process's CPU time per call.

type benchCall func(ctx context.Context) error

func BenchmarkRoundTrip(b *testing.B) {
	setups := []struct {
		name  string
		setup func(b *testing.B) benchCall
	}{
		{"plain-unary", setupPlainUnary},
		{"grpc-stream", setupStreamEcho},
		{"tunnel-grpc", func(b *testing.B) benchCall {
			return setupTunnel(b, func(tb testing.TB, srv *Server) clientSide { return startGRPC(tb, srv) })
		}},
		{"tunnel-conn", func(b *testing.B) benchCall {
			return setupTunnel(b, func(tb testing.TB, srv *Server) clientSide { return startConn(tb, srv) })
		}},
		{"tunnel-longpoll", func(b *testing.B) benchCall {
			return setupTunnel(b, func(tb testing.TB, srv *Server) clientSide { return startLongPoll(tb, srv, false) })
		}},
	}
	for _, s := range setups {
		b.Run(s.name+"/latency", func(b *testing.B) { benchLatency(b, s.setup(b)) })
		b.Run(s.name+"/throughput-c64", func(b *testing.B) { benchThroughput(b, s.setup(b), 64) })
	}
}

func setupPlainUnary(b *testing.B) benchCall {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, health.NewServer())
	go func() { _ = gs.Serve(lis) }()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cc.Close()
		gs.Stop()
	})
	hc := healthpb.NewHealthClient(cc)
	req := &healthpb.HealthCheckRequest{}
	return func(ctx context.Context) error {
		_, err := hc.Check(ctx, req)
		return err
	}
}

// setupStreamEcho is the floor of a tunnel round trip on the gRPC
// transport: one request and one response message over an open grpc-go
// bidi stream, with nothing around them — no frames, ids, handler
// goroutines or flow accounting. Concurrent calls take streams from a pool
// (one stream carries one exchange at a time).
func setupStreamEcho(b *testing.B) benchCall {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	check := health.NewServer()
	desc := grpc.StreamDesc{StreamName: "Echo", ServerStreams: true, ClientStreams: true,
		Handler: func(_ any, stream grpc.ServerStream) error {
			for {
				req := &healthpb.HealthCheckRequest{}
				if err := stream.RecvMsg(req); err != nil {
					return nil // the client closed the stream
				}
				resp, err := check.Check(stream.Context(), req)
				if err != nil {
					return err
				}
				if err := stream.SendMsg(resp); err != nil {
					return err
				}
			}
		},
	}
	gs := grpc.NewServer(GRPCServerOptions()...)
	gs.RegisterService(&grpc.ServiceDesc{ServiceName: "bench.Echo", HandlerType: (*any)(nil), Streams: []grpc.StreamDesc{desc}}, struct{}{})
	go func() { _ = gs.Serve(lis) }()
	cc, err := grpc.NewClient(lis.Addr().String(), append(GRPCDialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(func() {
		cancel()
		_ = cc.Close()
		gs.Stop()
	})
	pool := make(chan grpc.ClientStream, 64)
	for range cap(pool) {
		st, err := cc.NewStream(ctx, &desc, "/bench.Echo/Echo")
		if err != nil {
			b.Fatal(err)
		}
		pool <- st
	}
	req := &healthpb.HealthCheckRequest{}
	return func(context.Context) error {
		st := <-pool
		defer func() { pool <- st }()
		if err := st.SendMsg(req); err != nil {
			return err
		}
		return st.RecvMsg(&healthpb.HealthCheckResponse{})
	}
}

func setupTunnel(b *testing.B, start func(testing.TB, *Server) clientSide) benchCall {
	srv := NewServer(ServerOptions{Logger: discardLogger()})
	cs := start(b, srv)
	reg := NewHandlerRegistry()
	if err := Register(reg, health.NewServer().Check); err != nil {
		b.Fatal(err)
	}
	c := cs.newClient(ClientOptions{Name: "bench", Handlers: reg, MaxInFlight: 64, Logger: discardLogger()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		<-done
	})
	waitFor(b, 5*time.Second, func() bool { return srv.Connected("bench") }, "bench client to connect")
	req := &healthpb.HealthCheckRequest{}
	return func(ctx context.Context) error {
		_, err := Call[*healthpb.HealthCheckResponse](ctx, srv, "bench", req)
		return err
	}
}

func benchLatency(b *testing.B, call benchCall) {
	ctx := context.Background()
	// Warm up connections and pools outside the measurement.
	for range 100 {
		if err := call(ctx); err != nil {
			b.Fatal(err)
		}
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if err := call(ctx); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}

func benchThroughput(b *testing.B, call benchCall, concurrency int) {
	ctx := context.Background()
	for range 100 {
		if err := call(ctx); err != nil {
			b.Fatal(err)
		}
	}
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((concurrency + procs - 1) / procs)
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := call(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
}

// processCPU is the user + system CPU time this process has used: per call
// it is the number other load on the machine changes least.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
