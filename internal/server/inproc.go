package server

import (
	"context"
	"encoding/json"
	"math"
	"net"
	"net/http"
	"net/textproto"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/invoke"
	"github.com/croupier/croupier/internal/principal"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
)

// REST reaches the services in process with the same edge as gRPC: unary
// methods run their generated handlers directly under the same interceptor
// chain (direct, below); streams (the SSE routes) go through an in-process
// gRPC connection (an in-memory pipe, no socket) to a second grpc.Server
// that carries the same services and edge interceptors. The HTTP edge
// authenticates the request (token or certificate) and forwards the
// principal — in the context to unary handlers, as metadata to streams;
// only these in-process paths can deliver it, and the gateway forwards no
// client header under that name (restHeaders), so an HTTP client cannot
// forge an identity.
const (
	mdPrincipal = "x-croupier-principal-bin"
	mdPeer      = "x-croupier-peer"
	mdAdmitted  = "x-croupier-admitted"
)

type inproc struct {
	lis  *bufconn.Listener
	srv  *grpc.Server
	conn *grpc.ClientConn
	// cc is what REST calls: unary methods directly (d), streams over conn.
	cc grpc.ClientConnInterface
}

func newInproc(srv *grpc.Server, d *direct, maxRequest int, extra ...grpc.DialOption) (*inproc, error) {
	lis := bufconn.Listen(1 << 20)
	conn, err := grpc.NewClient("passthrough:///croupier-inproc", append([]grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(maxRequest+4096), grpc.MaxCallRecvMsgSize(math.MaxInt32))},
		extra...)...)
	if err != nil {
		return nil, err
	}
	d.streams = conn
	return &inproc{lis: lis, srv: srv, conn: conn, cc: d}, nil
}

// direct carries REST's unary calls to the services without an encoding
// or HTTP/2 hop: the generated method handler runs under the same
// interceptor chain (RPC metrics, then the edge) as on the in-process gRPC
// server, with the gateway's metadata as the incoming metadata. Streams
// (the SSE routes) still take the in-process connection.
type direct struct {
	methods map[string]directMethod // by full method name
	chain   grpc.UnaryServerInterceptor
	streams grpc.ClientConnInterface
}

type directMethod struct {
	impl    any
	handler grpc.MethodHandler
}

func newDirect(chain ...grpc.UnaryServerInterceptor) *direct {
	return &direct{methods: map[string]directMethod{}, chain: chainUnary(chain)}
}

// RegisterService makes d a grpc.ServiceRegistrar, so the list of services
// registers on it as on a grpc.Server.
func (d *direct) RegisterService(desc *grpc.ServiceDesc, impl any) {
	for _, m := range desc.Methods {
		d.methods["/"+desc.ServiceName+"/"+m.MethodName] = directMethod{impl: impl, handler: m.Handler}
	}
}

func (d *direct) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	m, ok := d.methods[method]
	if !ok {
		return status.Errorf(codes.Unimplemented, "%s is not served", method)
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	// The handler sees the gateway's metadata as incoming and sends none on.
	ctx = metadata.NewIncomingContext(metadata.NewOutgoingContext(ctx, nil), md)
	// The principal the HTTP edge put in the request's context goes on as
	// is, not encoded into metadata (see forwardedIdentity).
	ctx = context.WithValue(ctx, directPrincipal{}, principal.FromContext(ctx))
	st := &directStream{method: method}
	ctx = grpc.NewContextWithServerTransportStream(ctx, st)
	resp, err := m.handler(m.impl, ctx, func(in any) error {
		proto.Merge(in.(proto.Message), args.(proto.Message))
		return nil
	}, d.chain)
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			*o.HeaderAddr = st.header
		case grpc.TrailerCallOption:
			*o.TrailerAddr = st.trailer
		}
	}
	if err != nil {
		return err
	}
	proto.Merge(reply.(proto.Message), resp.(proto.Message))
	// REST answers in JSON, which has no place for fields a response
	// carries still encoded (an invocation's result, see invoke.Materialize),
	// except InvokeFunction's, which the gateway's marshaler writes from the
	// bytes (restMarshaler).
	if _, ok := reply.(*croupierv1.InvokeFunctionResponse); ok {
		return nil
	}
	if err := invoke.Materialize(reply.(proto.Message)); err != nil {
		return status.Errorf(codes.Internal, "decode the response of %s: %v", method, err)
	}
	return nil
}

func (d *direct) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if md, _ := metadata.FromOutgoingContext(ctx); len(md.Get(mdPrincipal)) == 0 {
		// A stream crosses the in-process connection, where only metadata
		// travels: the principal goes as metadata (sseStream adds it itself).
		b, err := json.Marshal(principal.FromContext(ctx))
		if err != nil {
			return nil, status.Errorf(codes.Internal, "encode the caller's identity: %v", err)
		}
		ctx = metadata.AppendToOutgoingContext(ctx, mdPrincipal, string(b))
	}
	return d.streams.NewStream(ctx, desc, method, opts...)
}

// directPrincipal is the context key under which direct hands a unary
// handler the principal of the REST request.
type directPrincipal struct{}

// directStream collects the headers and trailers a handler sets.
type directStream struct {
	method          string
	header, trailer metadata.MD
}

func (s *directStream) Method() string { return s.method }
func (s *directStream) SetHeader(md metadata.MD) error {
	s.header = metadata.Join(s.header, md)
	return nil
}
func (s *directStream) SendHeader(md metadata.MD) error { return s.SetHeader(md) }
func (s *directStream) SetTrailer(md metadata.MD) error {
	s.trailer = metadata.Join(s.trailer, md)
	return nil
}

// chainUnary runs ics in order around a handler, as grpc.ChainUnaryInterceptor does.
func chainUnary(ics []grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		for i := len(ics) - 1; i >= 0; i-- {
			ic, next := ics[i], h
			h = func(ctx context.Context, req any) (any, error) { return ic(ctx, req, info, next) }
		}
		return h(ctx, req)
	}
}

func (p *inproc) close() {
	_ = p.conn.Close()
	p.srv.Stop()
}

// restHeaders forwards only the request id from HTTP headers to gRPC
// metadata (grpc-gateway adds authorization and x-forwarded-* itself; the
// in-process edge ignores them).
func restHeaders(key string) (string, bool) {
	if textproto.CanonicalMIMEHeaderKey(key) == "X-Request-Id" {
		return "x-request-id", true
	}
	return "", false
}

// forwardIdentity is the metadata of an SSE stream: the principal the HTTP
// edge authenticated and the client's address.
func forwardIdentity(_ context.Context, r *http.Request) metadata.MD {
	b, err := json.Marshal(principal.FromContext(r.Context()))
	if err != nil {
		return nil
	}
	return metadata.Pairs(mdPrincipal, string(b), mdPeer, r.RemoteAddr)
}

// forwardPeer is the gateway's metadata annotator: the client's address.
// The principal travels in the context to unary handlers (direct) and is
// added as metadata to streams (direct.NewStream): encoding it as JSON and
// decoding it again cost a REST call ~10 % of its CPU.
func forwardPeer(_ context.Context, r *http.Request) metadata.MD {
	return metadata.Pairs(mdPeer, r.RemoteAddr)
}

// forwardedIdentity is the identifyFunc of the in-process paths: the
// principal direct passed in the context, or for a stream the one in its
// metadata.
func forwardedIdentity(ctx context.Context, _ string, _ bool) (principal.Principal, context.Context, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	p, ok := ctx.Value(directPrincipal{}).(principal.Principal)
	if !ok {
		v := md.Get(mdPrincipal)
		if len(v) != 1 || json.Unmarshal([]byte(v[0]), &p) != nil {
			return p, ctx, apierr.New(codes.Unauthenticated, apierr.CodeUnauthenticated, "in-process call without a forwarded identity")
		}
	}
	if a := md.Get(mdPeer); len(a) == 1 {
		if addr, err := net.ResolveTCPAddr("tcp", a[0]); err == nil {
			ctx = peer.NewContext(ctx, &peer.Peer{Addr: addr})
		}
	}
	return p, ctx, nil
}

// admittedHeader reports whether a stream came through the REST edge, which
// waits for the admitted header before starting a Server-Sent Events
// response.
func admittedHeader(ctx context.Context) bool {
	md, _ := metadata.FromIncomingContext(ctx)
	return len(md.Get(mdPrincipal)) > 0
}

func admittedMD() metadata.MD { return metadata.Pairs(mdAdmitted, "1") }
