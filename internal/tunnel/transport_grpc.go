package tunnel

import (
	"context"
	"errors"
	"io"

	"google.golang.org/grpc"

	tunnelv1 "github.com/croupier/croupier/api/croupier/tunnel/v1"
)

// RegisterGRPC serves the stream transport (TunnelService.Connect) on gs.
func (s *Server) RegisterGRPC(gs grpc.ServiceRegistrar) {
	tunnelv1.RegisterTunnelServiceServer(gs, &grpcService{s: s})
}

type grpcService struct {
	tunnelv1.UnimplementedTunnelServiceServer
	s *Server
}

// Connect hands the stream to the core. Returning from here cancels the
// stream, which is what unblocks the core's reader and writer.
func (g *grpcService) Connect(stream tunnelv1.TunnelService_ConnectServer) error {
	return g.s.serve(stream.Context(), stream)
}

// NewGRPCClient returns a Client that connects over the stream transport on
// cc (which the caller dials, with its own credentials, and closes).
func NewGRPCClient(cc grpc.ClientConnInterface, opts ClientOptions) *Client {
	tc := tunnelv1.NewTunnelServiceClient(cc)
	return newClient(opts, func(ctx context.Context, hello *tunnelv1.Hello) (clientLink, error) {
		return dialGRPC(ctx, tc, hello)
	})
}

func dialGRPC(ctx context.Context, tc tunnelv1.TunnelServiceClient, hello *tunnelv1.Hello) (clientLink, error) {
	ctx, cancel := context.WithCancel(ctx)
	stream, err := tc.Connect(ctx, grpc.MaxCallRecvMsgSize(int(hello.GetMaxFrameBytes())))
	if err != nil {
		cancel()
		return nil, err
	}
	err = stream.Send(&tunnelv1.ClientToServer{Frame: &tunnelv1.ClientToServer_Hello{Hello: hello}})
	if errors.Is(err, io.EOF) {
		// The stream ended; its status is what Recv returns.
		_, err = stream.Recv()
	}
	if err != nil {
		cancel()
		return nil, err
	}
	return &grpcClientLink{stream: stream, cancel: cancel}, nil
}

type grpcClientLink struct {
	stream tunnelv1.TunnelService_ConnectClient
	cancel context.CancelFunc
}

func (l *grpcClientLink) Recv() (*tunnelv1.ServerToClient, error) { return l.stream.Recv() }

func (l *grpcClientLink) Send(f *tunnelv1.ClientToServer) error {
	err := l.stream.Send(f)
	if errors.Is(err, io.EOF) {
		// The stream is over; the reader reports why.
		return errors.New("stream closed")
	}
	return err
}

// Close cancels the stream; the server sees it end at once.
func (l *grpcClientLink) Close() { l.cancel() }

// streamWindow is the fixed HTTP/2 flow-control window of tunnel
// connections, per stream and per connection. A fixed window turns off
// grpc-go's bandwidth estimator, which otherwise answers nearly every data
// frame of a request/response exchange with a PING and its ACK — two more
// frames, writes and reads per frame on a link that carries small frames
// one by one. 1 MiB is 16 times grpc-go's initial window, so bursts of
// small frames never wait for a window update; a larger frame (up to the
// frame limit) goes through in parts as the receiver returns window, and a
// peer that stops reading is still held back. The cost is a ceiling of
// 1 MiB per round trip per stream (~10 MB/s at 100 ms), ample for control
// traffic.
const streamWindow = 1 << 20

// GRPCServerOptions are the options a gRPC server carrying the stream
// transport (or other small request/response traffic) should use.
//
// A server holds one connection per agent, idle most of the time: a 16 KiB
// read buffer (grpc-go's default is 32 KiB; write buffers are already
// pooled between flushes) keeps an idle connection smaller. Frames here are
// small, so it costs no throughput (tunnel bench, bench/scale).
func GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.InitialWindowSize(streamWindow), grpc.InitialConnWindowSize(streamWindow),
		grpc.ReadBufferSize(16 << 10)}
}

// GRPCDialOptions are the matching options for the client connection.
func GRPCDialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithInitialWindowSize(streamWindow), grpc.WithInitialConnWindowSize(streamWindow)}
}
