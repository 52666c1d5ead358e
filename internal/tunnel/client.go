package tunnel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/status"
)

// ClientOptions configures a Client. Zero values take the documented
// defaults; Name and Handlers are required.
type ClientOptions struct {
	// Name the server calls this client by. A newer connection with the
	// same name replaces an older one.
	Name     string
	Handlers *HandlerRegistry

	// MaxInFlight is the most requests this client runs at once on a
	// connection; the server holds further calls back. Default 64. Handlers
	// of an ended connection are cancelled; one that ignores cancellation
	// keeps running but no longer counts.
	MaxInFlight int

	// MaxFrameBytes is the largest frame the client sends or accepts; a
	// connection uses the smaller of the client's and the server's limits.
	// A response over the limit reaches the caller as RESOURCE_EXHAUSTED.
	// Default DefaultMaxFrameBytes.
	MaxFrameBytes int

	Logger *slog.Logger // default slog.Default()

	// PingInterval is how often the client pings the server; PingTimeout is
	// how long the connection may stay silent before the client gives up on
	// it and reconnects. PingTimeout also bounds the wait for Welcome.
	// Defaults 10s and 30s.
	PingInterval, PingTimeout time.Duration

	// MinBackoff and MaxBackoff bound the jittered, doubling delay between
	// reconnect attempts. The delay starts over once a connection has stayed
	// up for MaxBackoff. Defaults 100ms and 30s.
	MinBackoff, MaxBackoff time.Duration

	// OnConnected is called, in its own goroutine, after each (re)connect;
	// ctx ends when that connection ends. Use it to (re)register state with
	// the server.
	OnConnected func(ctx context.Context)

	// OnHeartbeat, if set, is called by the connection's reader for every
	// Pong in which the server says it counted the client's ping as its
	// heartbeat, with the version the Pong carries (assignments_version in
	// tunnel.proto). It must return quickly.
	OnHeartbeat func(version int64)

	// TracerProvider, if set, gives every handler run a server span, child
	// of the caller's span. Without it the handler's context still carries
	// the caller's span context, so handlers can start child spans.
	TracerProvider trace.TracerProvider
}

func (o ClientOptions) withDefaults() ClientOptions {
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = defaultMaxInFlight
	}
	if o.MaxFrameBytes <= 0 {
		o.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.PingInterval <= 0 {
		o.PingInterval = defaultPingInterval
	}
	if o.PingTimeout <= 0 {
		o.PingTimeout = defaultPingTimeout
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = defaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = defaultMaxBackoff
	}
	o.MaxBackoff = max(o.MaxBackoff, o.MinBackoff)
	return o
}

func (o ClientOptions) validate() error {
	if err := validateName(o.Name); err != nil {
		return fmt.Errorf("tunnel: ClientOptions.Name: %s", status.Convert(err).Message())
	}
	if o.Handlers == nil {
		return errors.New("tunnel: ClientOptions.Handlers is nil")
	}
	if o.MaxInFlight > maxInFlightLimit {
		return fmt.Errorf("tunnel: ClientOptions.MaxInFlight %d exceeds %d", o.MaxInFlight, maxInFlightLimit)
	}
	return nil
}

// Client is the serving side of the tunnel: it keeps a connection to the
// server open and runs the handlers the server calls.
type Client struct {
	opts   ClientOptions
	log    *slog.Logger
	dial   dialFunc
	lim    limits
	tracer trace.Tracer // nil: no spans of our own

	// handlers tracks handler, worker and OnConnected goroutines; Run waits
	// for them.
	handlers sync.WaitGroup
	running  atomic.Bool
	// Handler workers (runHandler): work hands a handler to an idle worker;
	// stop, closed as Run returns, ends them; workers counts the workers,
	// idle those waiting on work not yet claimed by a runHandler. Both
	// channels are made by Run before it serves.
	work          chan func()
	stop          chan struct{}
	workers, idle atomic.Int32
	// cur is the connection being served, nil between connections; Ping
	// uses it.
	cur atomic.Pointer[session]
	// auto marks a client of NewAutoClient; onStream is set once it has
	// moved from the conn transport to the gRPC stream (UseStream).
	auto     bool
	onStream atomic.Bool
}

// Ping sends a heartbeat Ping (Ping.heartbeat set) on the current
// connection now and reports whether one was queued (false between
// connections or when the send queue is full). Only these pings reach the
// server's OnPing; the periodic keepalive ping does not, so a caller that
// stops calling Ping stops heartbeating even though the connection lives.
// The periodic ping skips its turn when Ping was called within the last
// PingInterval, so a caller that pings on its own schedule (the agent's
// heartbeat) does not double the traffic.
func (c *Client) Ping() bool {
	s := c.cur.Load()
	return s != nil && s.ping(true)
}

// Reconnect ends the connection whose OnConnected was given ctx with
// cause, as if it had failed: Run dials again after its backoff. It
// reports whether that connection was still the current one (a later
// connection is left alone). The agent uses it when its tunnel (transport
// conn) and its gRPC connection have reached different server nodes.
func (c *Client) Reconnect(ctx context.Context, cause error) bool {
	s := c.cur.Load()
	if s == nil || s.ctx != ctx || s.ctx.Err() != nil {
		return false
	}
	s.fail(cause)
	return true
}

func newClient(opts ClientOptions, dial dialFunc) *Client {
	opts = opts.withDefaults()
	return &Client{
		opts:   opts,
		log:    opts.Logger.With("component", "tunnel-client", "name", opts.Name),
		dial:   dial,
		lim:    newLimits(opts.MaxFrameBytes),
		tracer: newTracer(opts.TracerProvider),
	}
}

// Run connects, serves calls, and reconnects with backoff whenever the
// connection ends, until ctx is done. It then cancels running handlers,
// waits for them, and returns nil. It returns an error only for invalid
// options or when Run is already running.
func (c *Client) Run(ctx context.Context) error {
	if err := c.opts.validate(); err != nil {
		return err
	}
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("tunnel: Client.Run is already running")
	}
	defer c.running.Store(false)
	defer c.handlers.Wait()
	c.work, c.stop = make(chan func()), make(chan struct{})
	defer close(c.stop)

	bo := newBackoff(c.opts.MinBackoff, c.opts.MaxBackoff)
	for {
		started := time.Now()
		connected, err := c.runSession(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if connected && time.Since(started) >= c.opts.MaxBackoff {
			bo.reset()
		}
		delay := bo.next()
		c.log.Warn("tunnel connection ended; reconnecting", "err", err, "connected", connected, "retry_in", delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
	}
}

// maxHandlerWorkers bounds the handler workers a Client keeps.
const maxHandlerWorkers = 64

// runHandler runs a request's handler on a worker: a goroutine that, done
// with one handler, waits for the next until Run returns, so the stack a
// handler grew is there for the next one (a new goroutine per request grew
// its stack by copying on every call). An idle worker takes the handler if
// there is one; else a new goroutine runs it and stays on as a worker
// while fewer than min(MaxInFlight, 64) do. Only the session's reader
// calls it, and Run closes stop only after that reader has ended, so a
// claimed worker is always there to receive.
func (c *Client) runHandler(f func()) {
	if c.idle.Add(-1) >= 0 {
		c.work <- f // an idle worker is committed to receive it
		return
	}
	c.idle.Add(1)
	c.handlers.Go(func() {
		f()
		if c.workers.Add(1) > int32(min(c.opts.MaxInFlight, maxHandlerWorkers)) {
			c.workers.Add(-1)
			return
		}
		defer c.workers.Add(-1)
		for {
			c.idle.Add(1)
			select {
			case f := <-c.work:
				f()
			case <-c.stop:
				c.idle.Add(-1)
				return
			}
		}
	})
}
