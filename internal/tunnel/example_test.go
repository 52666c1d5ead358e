package tunnel_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/croupier/croupier/internal/tunnel"
)

// The server calls a function on a client that dialled in over gRPC.
func Example() {
	quiet := slog.New(slog.DiscardHandler)

	// Server side: serve the tunnel on a gRPC server.
	srv := tunnel.NewServer(tunnel.ServerOptions{Logger: quiet})
	defer srv.Close()
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	gs := grpc.NewServer()
	srv.RegisterGRPC(gs)
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()

	// Client side: register a handler and keep a connection open.
	handlers := tunnel.NewHandlerRegistry()
	_ = tunnel.Register(handlers, func(_ context.Context, name *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return wrapperspb.String("hello, " + name.GetValue()), nil
	})
	cc, _ := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer func() { _ = cc.Close() }()
	connected := make(chan struct{}, 1)
	client := tunnel.NewGRPCClient(cc, tunnel.ClientOptions{
		Name:        "agent-1",
		Handlers:    handlers,
		Logger:      quiet,
		OnConnected: func(context.Context) { connected <- struct{}{} },
	})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- client.Run(ctx) }()
	defer func() { stop(); <-done }()
	<-connected

	callCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := tunnel.Call[*wrapperspb.StringValue](callCtx, srv, "agent-1", wrapperspb.String("croupier"))
	fmt.Println(srv.Clients(), resp.GetValue(), err)
	// Output: [agent-1] hello, croupier <nil>
}
