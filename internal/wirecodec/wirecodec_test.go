package wirecodec_test

import (
	"context"
	"net"
	"testing"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/wirecodec"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

// fakeFunctions counts the requests that reach the handlers.
type fakeFunctions struct {
	croupierv1.UnimplementedFunctionServiceServer
	calls chan string
}

func (f fakeFunctions) InvokeFunction(context.Context, *croupierv1.InvokeFunctionRequest) (*croupierv1.InvokeFunctionResponse, error) {
	f.calls <- "invoke"
	return &croupierv1.InvokeFunctionResponse{Success: true}, nil
}

func (f fakeFunctions) StreamJobEvents(*croupierv1.StreamJobEventsRequest, grpc.ServerStreamingServer[croupierv1.JobEvent]) error {
	f.calls <- "stream"
	return nil
}

// serve runs a FunctionService on 127.0.0.1:0 and returns a client conn and
// the handler's call log.
func serve(t *testing.T, opts ...grpc.ServerOption) (*grpc.ClientConn, chan string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	calls := make(chan string, 16)
	gs := grpc.NewServer(opts...)
	croupierv1.RegisterFunctionServiceServer(gs, fakeFunctions{calls: calls})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(lis)
	}()
	t.Cleanup(func() { gs.Stop(); <-done })
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc, calls
}

func deepPayload(depth int) *structpb.Struct {
	s := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	for range depth - 1 {
		s = &structpb.Struct{Fields: map[string]*structpb.Value{"a": structpb.NewStructValue(s)}}
	}
	return s
}

// TestDeepPayloadIsInvalidArgument (issue 9, defect 8): a 5,000-deep
// payload over gRPC is INVALID_ARGUMENT with an ErrorInfo — grpc-go alone
// answers INTERNAL — and never reaches the handler; a normal one passes.
func TestDeepPayloadIsInvalidArgument(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := &croupierv1.InvokeFunctionRequest{GameId: "demo", Env: "dev", FunctionId: "f", Payload: deepPayload(5000)}

	plain, _ := serve(t)
	_, err := croupierv1.NewFunctionServiceClient(plain).InvokeFunction(ctx, req)
	if status.Code(err) != codes.Internal {
		t.Fatalf("without the codec: %v; the test assumes grpc-go answers INTERNAL", err)
	}

	cc, calls := serve(t, wirecodec.Options()...)
	client := croupierv1.NewFunctionServiceClient(cc)
	_, err = client.InvokeFunction(ctx, req)
	if status.Code(err) != codes.InvalidArgument || apierr.Info(err).GetCode() != apierr.CodeInvalidArgument {
		t.Fatalf("5,000-deep payload: %v; want INVALID_ARGUMENT with ErrorInfo", err)
	}
	if len(status.Convert(err).Message()) > 400 {
		t.Fatalf("a %d-byte message", len(status.Convert(err).Message()))
	}
	if _, err := client.InvokeFunction(ctx, &croupierv1.InvokeFunctionRequest{GameId: "demo", Payload: deepPayload(64)}); err != nil {
		t.Fatalf("a normal request: %v", err)
	}
	if got := <-calls; got != "invoke" || len(calls) != 0 {
		t.Fatalf("handler calls: %q then %d more; want only the normal request", got, len(calls))
	}
}

// rawCodec sends bytes as they are, to put malformed messages on the wire.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }
func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}
func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

// TestMalformedStreamRequestIsInvalidArgument: the server-streaming path
// (its request is read by RecvMsg) refuses a malformed body the same way.
func TestMalformedStreamRequestIsInvalidArgument(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cc, calls := serve(t, wirecodec.Options()...)
	desc := &grpc.StreamDesc{StreamName: "StreamJobEvents", ServerStreams: true}
	cs, err := cc.NewStream(ctx, desc, croupierv1.FunctionService_StreamJobEvents_FullMethodName, grpc.ForceCodecV2(rawCodec{}))
	if err != nil {
		t.Fatal(err)
	}
	garbage := []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f} // a length past the end
	if err := cs.SendMsg(&garbage); err != nil {
		t.Fatal(err)
	}
	_ = cs.CloseSend()
	var out []byte
	err = cs.RecvMsg(&out)
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("malformed stream request: %v; want INVALID_ARGUMENT", err)
	}
	if len(calls) != 0 {
		t.Fatal("the handler ran on a malformed request")
	}
}
