package tunnel

import (
	"context"
	"crypto/rand"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tunnelv1 "github.com/croupier/croupier/api/croupier/tunnel/v1"
)

type recvResult struct {
	f   *tunnelv1.ClientToServer
	err error
}

// serve runs one client connection from handshake to end and returns the
// status the transport should report to the client. ctx is the transport's
// context; it is passed to Authorize and its end ends the connection. When
// serve returns, the transport must unblock link.Recv and link.Send.
func (s *Server) serve(ctx context.Context, link serverLink) error {
	if !s.enter() {
		return errServerClosed
	}
	defer s.wg.Done()

	first := make(chan recvResult, 1)
	// handoff gives the reader its conn after the handshake, or nil if the
	// handshake failed. serve sends on it exactly once.
	handoff := make(chan *conn, 1)
	started := s.spawn(func() {
		f, err := link.Recv()
		first <- recvResult{f, err}
		if c := <-handoff; c != nil {
			c.readLoop()
		}
	})
	if !started {
		return errServerClosed
	}

	c, err := s.handshake(ctx, link, first)
	handoff <- c
	if err != nil {
		s.log.Debug("tunnel handshake failed", "err", err)
		return err
	}

	c.accept()
	c.keepalive(ctx)
	s.deregister(c, c.reason)
	return c.reason
}

// handshake reads Hello, authorizes the client and registers its connection.
func (s *Server) handshake(ctx context.Context, link serverLink, first <-chan recvResult) (*conn, error) {
	var r recvResult
	select {
	case r = <-first:
	case <-ctx.Done():
		return nil, ctxError(ctx)
	case <-s.closing:
		return nil, errServerClosed
	case <-time.After(s.opts.PingTimeout):
		return nil, status.Errorf(codes.DeadlineExceeded, "no hello within %s", s.opts.PingTimeout)
	}
	if r.err != nil {
		return nil, asStatus(r.err, codes.Unavailable)
	}
	hello := r.f.GetHello()
	if hello == nil {
		return nil, status.Error(codes.InvalidArgument, "the first frame must be hello")
	}
	if err := validateHello(hello); err != nil {
		return nil, err
	}
	if s.opts.Authorize != nil {
		if err := s.opts.Authorize(ctx, hello.GetName()); err != nil {
			return nil, asStatus(err, codes.PermissionDenied)
		}
	}

	c := newConn(s, link, hello)
	// The welcome is queued before the conn is visible to callers, so it is
	// the first frame the writer sends.
	c.queue(nil, &tunnelv1.ServerToClient{Frame: &tunnelv1.ServerToClient_Welcome{Welcome: &tunnelv1.Welcome{
		ConnectionId:    c.id,
		MaxFrameBytes:   uint32(s.lim.maxFrameBytes),
		ProtocolVersion: protocolVersion,
	}}}, false)
	if err := s.register(c); err != nil {
		return nil, err
	}
	return c, nil
}

// newID returns a random identifier (128 bits, base32) for connections and
// long-poll sessions.
func newID() string {
	return rand.Text()
}
