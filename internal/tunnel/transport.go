package tunnel

import (
	"context"

	tunnelv1 "github.com/croupier/croupier/api/croupier/tunnel/v1"
)

// serverLink is one client connection as a server transport presents it to
// the core. The core calls Recv from one goroutine and Send from another.
// Once the core's serve returns, the transport must make both return (the
// gRPC transport does so by returning from the stream handler, the long-poll
// transport by closing its session).
type serverLink interface {
	Recv() (*tunnelv1.ClientToServer, error)
	Send(*tunnelv1.ServerToClient) error
}

// clientLink is one connection as a client transport presents it to the
// core. Recv and Send are each called from one goroutine; Close ends the
// link, makes both return, and may be called more than once.
type clientLink interface {
	Recv() (*tunnelv1.ServerToClient, error)
	Send(*tunnelv1.ClientToServer) error
	Close()
}

// dialFunc opens a client link and delivers hello as its first frame. The
// link lives until Close or until ctx ends.
type dialFunc func(ctx context.Context, hello *tunnelv1.Hello) (clientLink, error)
