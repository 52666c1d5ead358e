package tunnel

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/croupier/croupier/internal/telemetry"
)

// ServerOptions configures a Server. Zero values take the documented defaults.
type ServerOptions struct {
	Logger *slog.Logger // default slog.Default()

	// PingTimeout is how long a connection may stay silent (no frame at
	// all) before it is dropped as half-open; it also bounds the wait for
	// Hello. The server pings only a client that has been silent for
	// PingTimeout-PingInterval, then every PingInterval until it hears
	// something (see conn.keepalive): a client that pings on its own is
	// never pinged. Defaults 10s and 30s.
	PingInterval, PingTimeout time.Duration

	// MaxFrameBytes is the largest frame the server sends or accepts; a
	// connection uses the smaller of the server's and the client's limits.
	// A request over the limit fails with RESOURCE_EXHAUSTED before it is
	// sent. Default DefaultMaxFrameBytes. For the gRPC transport, the
	// grpc.Server's MaxRecvMsgSize (default 4 MiB) enforces the receive side.
	MaxFrameBytes int

	// Authorize admits a client by name. ctx is the transport's: the gRPC
	// stream context, or the long-poll /open request's context. A returned
	// status error reaches the client as is; any other error becomes
	// PERMISSION_DENIED.
	Authorize func(ctx context.Context, name string) error

	// OnConnect is called for every accepted connection, including one that
	// replaces an older connection of the same name. OnDisconnect is called
	// when the current connection of a name ends — not for a connection that
	// was replaced — so after OnDisconnect(name) the name is not connected.
	// Both are called one at a time, in the order the connection table
	// changed, from the goroutine that changed it; they must return quickly
	// and must not call Close (Disconnect, Clients, Connected are fine).
	OnConnect    func(name string)
	OnDisconnect func(name string, err error)

	// OnPing, if set, is called by a connection's reader for every
	// heartbeat Ping from the client (Ping.heartbeat set: Client.Ping, not
	// the periodic keepalive ping). If it returns ok, the ping counted as
	// the client's heartbeat and the Pong carries version as
	// assignments_version (see tunnel.proto); otherwise the Pong carries
	// nothing more. It runs on the reader, before the frames behind the
	// ping, so it must not block (no database reads: call responses on the
	// connection wait for it).
	OnPing func(name string) (version int64, ok bool)

	// Metrics receives connection counts, in-flight calls and queue depth;
	// nil records nothing.
	Metrics *telemetry.TunnelMetrics
	// TracerProvider, if set, gives every call a client span. Without it
	// the caller's own span context still travels to the client.
	TracerProvider trace.TracerProvider
}

func (o ServerOptions) withDefaults() ServerOptions {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.PingInterval <= 0 {
		o.PingInterval = defaultPingInterval
	}
	if o.PingTimeout <= 0 {
		o.PingTimeout = defaultPingTimeout
	}
	if o.MaxFrameBytes <= 0 {
		o.MaxFrameBytes = DefaultMaxFrameBytes
	}
	return o
}

// Server is the calling side of the tunnel: it holds the connected clients
// and calls functions on them. Transports feed it connections (RegisterGRPC,
// LongPollHandler).
//
// Server.mu only guards the connection table; nothing is sent and no
// callback runs while it is held. Lock order: Server.mu, then conn.mu.
type Server struct {
	opts   ServerOptions
	log    *slog.Logger
	lim    limits
	tracer trace.Tracer // nil: no spans of our own

	mu     sync.RWMutex
	conns  map[string]*conn
	closed bool

	// events runs OnConnect/OnDisconnect in the order of the table changes
	// (tickets are taken under mu) without holding mu, so callbacks may call
	// back into the Server.
	events eventOrder

	// wg tracks every goroutine the server starts and every running serve;
	// Close waits for them. closing is closed when Close begins.
	wg      sync.WaitGroup
	closing chan struct{}

	longPoll *longPollServer
}

// NewServer returns a Server with no clients.
func NewServer(opts ServerOptions) *Server {
	opts = opts.withDefaults()
	s := &Server{
		opts:    opts,
		log:     opts.Logger.With("component", "tunnel-server"),
		lim:     newLimits(opts.MaxFrameBytes),
		tracer:  newTracer(opts.TracerProvider),
		conns:   make(map[string]*conn),
		closing: make(chan struct{}),
	}
	s.events.init()
	s.longPoll = newLongPollServer(s)
	return s
}

// Clients returns the names of the connected clients, sorted.
func (s *Server) Clients() []string {
	s.mu.RLock()
	names := make([]string, 0, len(s.conns))
	for name := range s.conns {
		names = append(names, name)
	}
	s.mu.RUnlock()
	slices.Sort(names)
	return names
}

// Connected reports whether a client of that name is connected.
func (s *Server) Connected(name string) bool {
	return s.lookup(name) != nil
}

// Disconnect ends the named client's current connection, if any. In-flight
// calls on it fail with UNAVAILABLE; reason (a status error, e.g.
// PERMISSION_DENIED "credentials revoked") is what the client and
// OnDisconnect see. The client may reconnect; Authorize decides whether it
// gets in.
func (s *Server) Disconnect(name string, reason error) {
	if reason == nil {
		reason = status.Error(codes.Unavailable, "disconnected by the server")
	}
	if c := s.lookup(name); c != nil {
		c.close(asStatus(reason, codes.Unavailable))
	}
}

// Close ends every connection, fails their calls with UNAVAILABLE, refuses
// new connections and waits for the server's goroutines to finish. It is
// idempotent. The gRPC server and HTTP server that carry the transports are
// the caller's to stop.
func (s *Server) Close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.closing)
	}
	conns := make([]*conn, 0, len(s.conns))
	for _, c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()

	shutdown := status.Error(codes.Unavailable, "tunnel server is shutting down")
	for _, c := range conns {
		c.close(shutdown)
	}
	s.longPoll.closeAll()
	s.wg.Wait()
}

func (s *Server) lookup(name string) *conn {
	s.mu.RLock()
	c := s.conns[name]
	s.mu.RUnlock()
	return c
}

// enter registers work that Close must wait for; the caller calls s.wg.Done
// when it finishes. It refuses once Close has begun, so nothing is added to
// the WaitGroup while Close waits on it.
func (s *Server) enter() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

// spawn runs fn in a goroutine that Close waits for.
func (s *Server) spawn(fn func()) bool {
	if !s.enter() {
		return false
	}
	go func() {
		defer s.wg.Done()
		fn()
	}()
	return true
}

// register makes c the current connection of its name and ends the one it
// replaces.
func (s *Server) register(c *conn) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errServerClosed
	}
	old := s.conns[c.name]
	s.conns[c.name] = c
	ticket := s.events.take()
	s.mu.Unlock()

	if old != nil {
		old.close(status.Errorf(codes.Unavailable, "replaced by a newer connection of %q", c.name))
	}
	s.events.run(ticket, func() {
		if old != nil {
			s.log.Info("tunnel client reconnected; stale connection replaced", "client", c.name, "conn", c.id, "stale_conn", old.id)
		} else {
			s.log.Info("tunnel client connected", "client", c.name, "conn", c.id)
		}
		s.opts.Metrics.Connected()
		if s.opts.OnConnect != nil {
			s.opts.OnConnect(c.name)
		}
	})
	return nil
}

// deregister removes c from the table if it is still the current connection
// of its name, and reports the disconnect only then.
func (s *Server) deregister(c *conn, reason error) {
	s.mu.Lock()
	if s.conns[c.name] != c {
		s.mu.Unlock()
		return
	}
	delete(s.conns, c.name)
	ticket := s.events.take()
	s.mu.Unlock()

	s.events.run(ticket, func() {
		s.log.Info("tunnel client disconnected", "client", c.name, "conn", c.id, "reason", status.Convert(reason).Message())
		s.opts.Metrics.Disconnected()
		if s.opts.OnDisconnect != nil {
			s.opts.OnDisconnect(c.name, reason)
		}
	})
}

var errServerClosed = status.Error(codes.Unavailable, "tunnel server is shutting down")
