package tunnel

import (
	"context"
	"errors"
	"net"

	tunnelv1 "github.com/croupier/croupier/api/croupier/tunnel/v1"
	"google.golang.org/grpc"
)

// ErrConnUnsupported is what a dialer of NewAutoClient returns (wrapped)
// when the server it reached does not offer the conn transport: its TLS
// handshake agreed on no ALPN protocol, or on another one than ConnALPN (a
// server older than the conn transport, or a proxy that speaks HTTP/2
// only). The client then uses the gRPC stream.
var ErrConnUnsupported = errors.New("the server does not offer the conn transport")

// NewAutoClient returns a Client on the conn transport, each connection
// opened with dial (as NewConnClient), that moves to the gRPC stream
// transport over cc for good — from its next connection on — once a dial
// fails with ErrConnUnsupported or UseStream is called. Any other dial
// failure is retried on the conn transport, as by a conn client.
func NewAutoClient(dial func(ctx context.Context) (net.Conn, error), cc grpc.ClientConnInterface, opts ClientOptions) *Client {
	tc := tunnelv1.NewTunnelServiceClient(cc)
	c := newClient(opts, nil)
	c.auto = true
	c.dial = func(ctx context.Context, hello *tunnelv1.Hello) (clientLink, error) {
		if !c.onStream.Load() {
			var unsupported error
			l, err := dialConn(ctx, func(ctx context.Context) (net.Conn, error) {
				nc, err := dial(ctx)
				if errors.Is(err, ErrConnUnsupported) {
					unsupported = err
				}
				return nc, err
			}, hello)
			if unsupported == nil {
				return l, err
			}
			c.UseStream(unsupported)
		}
		return dialGRPC(ctx, tc, hello)
	}
	return c
}

// UseStream moves a client of NewAutoClient to the gRPC stream transport
// from its next connection on (the current one is left alone: Reconnect
// ends it), logging why. It reports whether it moved it: false for any
// other client, and once it has moved.
func (c *Client) UseStream(why error) bool {
	if !c.auto || !c.onStream.CompareAndSwap(false, true) {
		return false
	}
	c.log.Warn("the tunnel moves to the gRPC stream transport: the conn transport does not work with this server", "why", why)
	return true
}

// OnStream reports whether a client of NewAutoClient has moved to the gRPC
// stream transport (UseStream).
func (c *Client) OnStream() bool { return c.onStream.Load() }
