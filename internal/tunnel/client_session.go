package tunnel

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	tunnelv1 "github.com/croupier/croupier/api/croupier/tunnel/v1"
)

// session is one client connection: the dispatcher between the link and the
// handlers. A reader and a writer goroutine serve the link; each request
// runs on one of the Client's handler workers (runHandler).
type session struct {
	c      *Client
	link   clientLink
	ctx    context.Context // ends with the connection; parent of handler contexts
	cancel context.CancelCauseFunc

	// sendq holds frames for the writer: responses (at most MaxInFlight at
	// once), pings and pongs.
	sendq chan *tunnelv1.ClientToServer

	// inflight holds one token per running handler of this connection,
	// matching the server's per-connection accounting.
	inflight chan struct{}

	welcome      chan *tunnelv1.Welcome // the reader hands over the welcome
	peerMaxFrame int                    // frame limit of this connection; set by the reader before it starts handlers

	flusher flusher // the link, when its Send buffers (conn transport); else nil

	mu       sync.Mutex
	handlers map[uint64]context.CancelFunc

	lastRecv atomic.Int64 // unix nanoseconds
	lastPing atomic.Int64 // unix nanoseconds of the last ping queued
	nonce    atomic.Uint64
}

// runSession dials, serves one connection until it ends, and reports whether
// the handshake completed and why the connection ended.
func (c *Client) runSession(ctx context.Context) (connected bool, err error) {
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	link, err := c.dial(sctx, &tunnelv1.Hello{
		Name:            c.opts.Name,
		MaxInFlight:     uint32(c.opts.MaxInFlight),
		MaxFrameBytes:   uint32(c.lim.maxFrameBytes),
		ProtocolVersion: protocolVersion,
	})
	if err != nil {
		return false, err
	}
	s := &session{
		c:        c,
		link:     link,
		ctx:      sctx,
		cancel:   cancel,
		sendq:    make(chan *tunnelv1.ClientToServer, c.opts.MaxInFlight+maxControlFrameQueue),
		inflight: make(chan struct{}, c.opts.MaxInFlight),
		welcome:  make(chan *tunnelv1.Welcome, 1),
		handlers: make(map[uint64]context.CancelFunc),
	}
	s.flusher, _ = link.(flusher)
	s.lastRecv.Store(time.Now().UnixNano())

	var wg sync.WaitGroup
	wg.Go(s.readLoop)
	wg.Go(s.writeLoop)
	c.cur.Store(s)
	connected, err = s.run()
	c.cur.CompareAndSwap(s, nil)
	cancel(err)
	link.Close()
	wg.Wait()
	return connected, err
}

// run waits for the welcome, then keeps the connection alive until it ends.
func (s *session) run() (connected bool, err error) {
	opts := s.c.opts
	var w *tunnelv1.Welcome
	select {
	case w = <-s.welcome:
	case <-s.ctx.Done():
		return false, context.Cause(s.ctx)
	case <-time.After(opts.PingTimeout):
		return false, status.Errorf(codes.DeadlineExceeded, "no welcome from the server within %s", opts.PingTimeout)
	}
	s.c.log.Info("tunnel connected", "conn", w.GetConnectionId())
	if opts.OnConnected != nil {
		s.c.handlers.Go(func() { opts.OnConnected(s.ctx) })
	}

	pings := time.NewTicker(opts.PingInterval)
	defer pings.Stop()
	dead := time.NewTimer(opts.PingTimeout)
	defer dead.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return true, context.Cause(s.ctx)
		case <-pings.C:
			if time.Since(time.Unix(0, s.lastPing.Load())) < opts.PingInterval {
				continue // Client.Ping pinged within the interval
			}
			s.ping(false)
		case <-dead.C:
			idle := time.Since(time.Unix(0, s.lastRecv.Load()))
			if idle >= opts.PingTimeout {
				return true, status.Errorf(codes.Unavailable, "keepalive timeout: nothing received from the server for %s", idle.Round(time.Millisecond))
			}
			dead.Reset(opts.PingTimeout - idle)
		}
	}
}

func (s *session) fail(err error) { s.cancel(err) }

func (s *session) ping(heartbeat bool) bool {
	s.lastPing.Store(time.Now().UnixNano())
	return s.trySend(&tunnelv1.ClientToServer{Frame: &tunnelv1.ClientToServer_Ping{Ping: &tunnelv1.Ping{Nonce: s.nonce.Add(1), Heartbeat: heartbeat}}})
}

func (s *session) readLoop() {
	welcomed := false
	for {
		f, err := s.link.Recv()
		if err != nil {
			s.fail(asStatus(err, codes.Unavailable))
			return
		}
		s.lastRecv.Store(time.Now().UnixNano())
		if err := validateServerFrame(f); err != nil {
			s.fail(err)
			return
		}
		if !welcomed {
			w := f.GetWelcome()
			if w == nil {
				s.fail(status.Error(codes.Internal, "protocol violation: the first server frame is not welcome"))
				return
			}
			welcomed = true
			// Frames either way stay within both sides' limits.
			s.peerMaxFrame = s.c.lim.maxFrameBytes
			if m := int(w.GetMaxFrameBytes()); m > 0 {
				s.peerMaxFrame = min(m, s.peerMaxFrame)
			}
			s.welcome <- w
			continue
		}
		switch fr := f.GetFrame().(type) {
		case *tunnelv1.ServerToClient_Request:
			s.start(fr.Request)
		case *tunnelv1.ServerToClient_Cancel:
			s.mu.Lock()
			cancel := s.handlers[fr.Cancel.GetId()]
			s.mu.Unlock()
			if cancel != nil {
				cancel()
			}
		case *tunnelv1.ServerToClient_Ping:
			s.trySend(&tunnelv1.ClientToServer{Frame: &tunnelv1.ClientToServer_Pong{Pong: &tunnelv1.Pong{Nonce: fr.Ping.GetNonce()}}})
		case *tunnelv1.ServerToClient_Pong:
			if h := s.c.opts.OnHeartbeat; h != nil && fr.Pong.AssignmentsVersion != nil {
				h(fr.Pong.GetAssignmentsVersion())
			}
		case *tunnelv1.ServerToClient_Welcome:
			s.fail(status.Error(codes.Internal, "protocol violation: second welcome"))
			return
		}
	}
}

// writeLoop is the only goroutine that sends on the link. A link that
// buffers (conn transport) is flushed whenever the queue is empty, so
// responses that finish together share a write.
func (s *session) writeLoop() {
	for {
		select {
		case <-s.ctx.Done():
			return
		case f := <-s.sendq:
			err := s.link.Send(f)
			if err == nil && s.flusher != nil && len(s.sendq) == 0 {
				// Let handlers about to respond queue first, so their
				// responses share the write — if any still runs.
				if len(s.inflight) > 0 {
					runtime.Gosched()
				}
				if len(s.sendq) == 0 {
					err = s.flusher.flush()
				}
			}
			if err != nil {
				s.fail(asStatus(err, codes.Unavailable))
				return
			}
		}
	}
}

// trySend queues a frame that may be dropped (ping, pong) if the queue is full.
func (s *session) trySend(f *tunnelv1.ClientToServer) bool {
	select {
	case s.sendq <- f:
		return true
	default:
		return false
	}
}

// start runs the handler for r on a handler worker, with the caller's
// deadline and a cancel the server can trigger.
func (s *session) start(r *tunnelv1.Request) {
	id := r.GetId()
	select {
	case s.inflight <- struct{}{}:
	default:
		// The server keeps within max_in_flight; only a broken server
		// gets here.
		s.respond(id, nil, status.Newf(codes.ResourceExhausted, "tunnel client %q is at its limit of %d requests in flight", s.c.opts.Name, s.c.opts.MaxInFlight).Proto())
		return
	}
	// One context per request: the deadline's own cancel is what the
	// server's Cancel triggers (a cancelable context under it was one more
	// context, closure and child registration per request).
	var (
		hctx    context.Context
		hcancel context.CancelFunc
	)
	if ms := r.GetTimeoutMs(); ms > 0 {
		hctx, hcancel = context.WithTimeout(s.ctx, time.Duration(ms)*time.Millisecond)
	} else {
		hctx, hcancel = context.WithCancel(s.ctx)
	}
	s.mu.Lock()
	if _, dup := s.handlers[id]; dup {
		s.mu.Unlock()
		hcancel()
		<-s.inflight
		s.c.log.Warn("tunnel request id reused while in flight; dropped", "id", id)
		return
	}
	s.handlers[id] = hcancel
	s.mu.Unlock()

	hctx, span := startHandlerSpan(hctx, s.c.tracer, s.c.opts.Name, r.GetPayload(), r.GetMetadata())
	s.c.runHandler(func() {
		resp, st := s.c.opts.Handlers.dispatch(hctx, r.GetPayload())
		if span != nil {
			endSpan(span, codes.Code(st.GetCode()), status.ErrorProto(st))
		}
		s.mu.Lock()
		delete(s.handlers, id)
		s.mu.Unlock()
		hcancel()
		// Free the slot before answering: the server reuses it as soon as
		// the response arrives and may send the next request at once.
		<-s.inflight
		s.respond(id, resp, st)
	})
}

// respond queues the response to request id. If the connection has ended the
// response is dropped: the caller has already been told UNAVAILABLE.
func (s *session) respond(id uint64, resp *anypb.Any, st *spb.Status) {
	r := &tunnelv1.Response{Id: id}
	if st == nil && anySize(resp) > s.peerMaxFrame {
		st = status.Newf(codes.ResourceExhausted, "response of %d bytes exceeds the tunnel frame limit of %d", anySize(resp), s.peerMaxFrame).Proto()
	}
	if st != nil && proto.Size(st) > s.peerMaxFrame/2 {
		st = status.New(codes.Code(st.GetCode()), "error status too large for the tunnel frame limit").Proto()
	}
	if st != nil {
		r.Result = &tunnelv1.Response_Error{Error: st}
	} else {
		r.Result = &tunnelv1.Response_Payload{Payload: resp}
	}
	select {
	case s.sendq <- &tunnelv1.ClientToServer{Frame: &tunnelv1.ClientToServer_Response{Response: r}}:
	case <-s.ctx.Done():
	}
}
