package server

import (
	"context"
	"encoding/json"
	"math"
	"net"
	"net/http"
	"net/textproto"

	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/principal"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/test/bufconn"
)

// REST reaches the services through an in-process gRPC connection (an
// in-memory pipe, no socket) to a second grpc.Server that carries the same
// services and the same edge interceptors as the network one. The HTTP edge
// authenticates the request (token or certificate) and forwards the
// principal as metadata; only this pipe can deliver it, and the gateway
// forwards no client header under that name (restHeaders), so an HTTP
// client cannot forge an identity.
const (
	mdPrincipal = "x-croupier-principal-bin"
	mdPeer      = "x-croupier-peer"
	mdAdmitted  = "x-croupier-admitted"
)

type inproc struct {
	lis  *bufconn.Listener
	srv  *grpc.Server
	conn *grpc.ClientConn
}

func newInproc(srv *grpc.Server, maxRequest int, extra ...grpc.DialOption) (*inproc, error) {
	lis := bufconn.Listen(1 << 20)
	conn, err := grpc.NewClient("passthrough:///croupier-inproc", append([]grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(maxRequest+4096), grpc.MaxCallRecvMsgSize(math.MaxInt32))},
		extra...)...)
	if err != nil {
		return nil, err
	}
	return &inproc{lis: lis, srv: srv, conn: conn}, nil
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

// forwardIdentity is the gateway's metadata annotator: the principal the
// HTTP edge authenticated and the client's address.
func forwardIdentity(_ context.Context, r *http.Request) metadata.MD {
	b, err := json.Marshal(principal.FromContext(r.Context()))
	if err != nil {
		return nil
	}
	return metadata.Pairs(mdPrincipal, string(b), mdPeer, r.RemoteAddr)
}

// forwardedIdentity is the identifyFunc of the in-process server.
func forwardedIdentity(ctx context.Context, _ string, _ bool) (principal.Principal, context.Context, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	v := md.Get(mdPrincipal)
	var p principal.Principal
	if len(v) != 1 || json.Unmarshal([]byte(v[0]), &p) != nil {
		return p, ctx, apierr.New(codes.Unauthenticated, apierr.CodeUnauthenticated, "in-process call without a forwarded identity")
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
