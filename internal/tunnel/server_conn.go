package tunnel

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	tunnelv1 "github.com/croupier/croupier/api/croupier/tunnel/v1"
)

// conn is one accepted client connection on the server. Two goroutines
// serve it for its whole life: the transport's (which runs keepalive and
// owns the lifetime) and a reader; a writer runs only while frames are
// queued (see queue). Callers do not write to the transport themselves: they
// queue a call and wait, so a stuck client only stalls its own queue (a
// call alone on its connection writes its own small request: queueCall).
type conn struct {
	s        *Server
	name     string
	id       string
	link     serverLink
	flusher  flusher // the link, when its Send buffers (conn transport); else nil
	maxFrame int     // frame limit of this connection: min(server's, client's)

	// slots holds one token per request outstanding at the client; its
	// capacity is the client's announced max_in_flight.
	slots chan struct{}

	// The writer's queues. A queued call holds a slot, so reqs never holds
	// more than max_in_flight calls; ctrl holds frames that jump the request
	// queue: welcome, cancels, pings, pongs. Cancels are bounded by the
	// slots; pings and pongs are dropped when it is full.
	qmu  sync.Mutex
	reqs []*call
	ctrl []*tunnelv1.ServerToClient
	// writing: a writer goroutine is sending (at most one at a time).
	// accepted: the handshake has ended, so frames may be sent.
	writing, accepted bool

	mu     sync.Mutex
	calls  map[uint64]*call
	nextID uint64

	lastRecv atomic.Int64 // unix nanoseconds of the last frame received

	done      chan struct{}
	closeOnce sync.Once
	reason    error // for the transport and OnDisconnect; set before done closes
	callerErr error // UNAVAILABLE, for callers; set before done closes
}

// call is one request from Call to its response.
type call struct {
	id       uint64
	payload  *anypb.Any
	metadata map[string]string // trace context; nil: none
	deadline time.Time         // zero: none
	result   chan callResult

	// guarded by conn.mu
	sent      bool // handed to the transport; a Cancel is needed to stop it
	abandoned bool // caller left before the writer got to it; skip it
}

type callResult struct {
	payload *anypb.Any
	err     error
}

func newConn(s *Server, link serverLink, hello *tunnelv1.Hello) *conn {
	maxInFlight := int(hello.GetMaxInFlight())
	if maxInFlight <= 0 {
		maxInFlight = 1
	}
	maxFrame := int(hello.GetMaxFrameBytes())
	if maxFrame <= 0 || maxFrame > s.lim.maxFrameBytes {
		maxFrame = s.lim.maxFrameBytes
	}
	c := &conn{
		s:        s,
		name:     hello.GetName(),
		id:       newID(),
		link:     link,
		maxFrame: maxFrame,
		slots:    make(chan struct{}, maxInFlight),
		calls:    make(map[uint64]*call),
		done:     make(chan struct{}),
	}
	c.flusher, _ = link.(flusher)
	c.lastRecv.Store(time.Now().UnixNano())
	return c
}

// close ends the connection once; later calls are no-ops.
func (c *conn) close(reason error) {
	c.closeOnce.Do(func() {
		c.reason = reason
		c.callerErr = status.Errorf(codes.Unavailable, "tunnel client %q disconnected: %s", c.name, status.Convert(reason).Message())
		close(c.done)
	})
}

// call sends payload to the client and waits for the response, the caller's
// ctx, or the end of the connection, whichever comes first.
func (c *conn) call(ctx context.Context, payload *anypb.Any, md map[string]string) (*anypb.Any, error) {
	m := c.s.opts.Metrics
	select {
	case c.slots <- struct{}{}: // a free slot: the common case
	default:
		m.AddQueued(1) // the client is at max_in_flight: wait for a slot
		select {
		case c.slots <- struct{}{}:
			m.AddQueued(-1)
		case <-ctx.Done():
			m.AddQueued(-1)
			return nil, notSent(ctxError(ctx))
		case <-c.done:
			m.AddQueued(-1)
			return nil, notSent(c.callerErr)
		}
	}
	m.AddInFlight(1)
	defer m.AddInFlight(-1)

	cl := &call{payload: payload, metadata: md, result: make(chan callResult, 1)}
	cl.deadline, _ = ctx.Deadline()
	c.mu.Lock()
	c.nextID++
	cl.id = c.nextID
	c.calls[cl.id] = cl
	c.mu.Unlock()

	select {
	case <-c.done:
		c.forget(cl)
		return nil, notSent(c.callerErr)
	default:
		c.queueCall(cl)
	}

	select {
	case r := <-cl.result:
		return r.payload, r.err
	case <-ctx.Done():
		if r, ok := tryResult(cl); ok {
			return r.payload, r.err
		}
		c.abandon(cl, ctx.Err())
		return nil, ctxError(ctx)
	case <-c.done:
		if r, ok := tryResult(cl); ok {
			return r.payload, r.err
		}
		return nil, c.callerErr
	}
}

func tryResult(cl *call) (callResult, bool) {
	select {
	case r := <-cl.result:
		return r, true
	default:
		return callResult{}, false
	}
}

// forget drops a call that never reached the queue and frees its slot.
func (c *conn) forget(cl *call) {
	c.mu.Lock()
	delete(c.calls, cl.id)
	c.mu.Unlock()
	<-c.slots
}

// abandon handles a caller that gave up on a queued call. If the writer has
// not sent it yet, it never will; if it has, the client is told to cancel
// the handler — unless the caller's deadline passed: the request carried
// that deadline, so the handler's context ends by itself, with
// DEADLINE_EXCEEDED rather than CANCELED. The slot stays taken until the
// client answers, because the handler keeps running until it notices.
func (c *conn) abandon(cl *call, why error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.calls[cl.id]; !ok {
		return // already answered
	}
	if !cl.sent {
		cl.abandoned = true
		return
	}
	if errors.Is(why, context.DeadlineExceeded) && !cl.deadline.IsZero() {
		return
	}
	c.queue(nil, &tunnelv1.ServerToClient{Frame: &tunnelv1.ServerToClient_Cancel{
		Cancel: &tunnelv1.Cancel{Id: cl.id},
	}}, false)
}

// requestFrame turns a queued call into its frame, or returns nil if the call
// must not be sent (abandoned, or its deadline passed while queued).
func (c *conn) requestFrame(cl *call) *tunnelv1.ServerToClient {
	var timeoutMs int64
	c.mu.Lock()
	if !cl.abandoned && !cl.deadline.IsZero() {
		left := time.Until(cl.deadline)
		if left <= 0 {
			cl.abandoned = true
			cl.result <- callResult{err: status.Error(codes.DeadlineExceeded, "deadline exceeded while queued for the tunnel")}
		}
		// Round up so a request with time left never reads as "no deadline".
		timeoutMs = int64((left + time.Millisecond - 1) / time.Millisecond)
	}
	if cl.abandoned {
		delete(c.calls, cl.id)
		c.mu.Unlock()
		<-c.slots
		return nil
	}
	cl.sent = true
	c.mu.Unlock()
	return &tunnelv1.ServerToClient{Frame: &tunnelv1.ServerToClient_Request{Request: &tunnelv1.Request{
		Id:        cl.id,
		Payload:   cl.payload,
		TimeoutMs: timeoutMs,
		Metadata:  cl.metadata,
	}}}
}

// complete delivers a response to its waiting call.
func (c *conn) complete(r *tunnelv1.Response) {
	c.mu.Lock()
	cl := c.calls[r.GetId()]
	if cl == nil || !cl.sent {
		c.mu.Unlock()
		c.s.log.Debug("tunnel response for an unknown request; dropped", "client", c.name, "id", r.GetId())
		return
	}
	delete(c.calls, cl.id)
	c.mu.Unlock()
	<-c.slots

	var res callResult
	switch v := r.GetResult().(type) {
	case *tunnelv1.Response_Payload:
		res.payload = v.Payload
	case *tunnelv1.Response_Error:
		res.err = status.ErrorProto(v.Error)
	}
	cl.result <- res // buffered, and each call completes once
}

// queue adds a request (cl) or a control frame (f), which goes ahead of
// every queued request, and starts a writer unless one is running.
// Droppable frames (pings, pongs) are discarded if the control queue is
// full; others are bounded by construction.
func (c *conn) queue(cl *call, f *tunnelv1.ServerToClient, droppable bool) {
	c.qmu.Lock()
	switch {
	case cl != nil:
		c.reqs = append(c.reqs, cl)
	case droppable && len(c.ctrl) >= maxControlFrameQueue:
		c.qmu.Unlock()
		return
	default:
		c.ctrl = append(c.ctrl, f)
	}
	start := c.claimWriter()
	c.qmu.Unlock()
	if start {
		c.startWriter()
	}
}

// queueCall queues cl's request and has it sent. A caller that finds no
// writer running, no other call outstanding and a small request
// (inlineWriteMax) writes its request itself: at one call at a time a
// writer goroutine is one more hand-off, and with it often a wake-up of
// another thread, on the call's path. Under load (other calls outstanding)
// a writer goroutine sends, so that frames share writes, and it sends
// large requests too: a write(2) the client's window cannot take blocks
// until the client reads, and a caller blocked in it could not leave at
// its deadline. A small frame fits the socket buffers even of a client
// that stopped reading after it answered its last call (one that stopped
// earlier keeps that call outstanding, so nobody writes inline to it).
func (c *conn) queueCall(cl *call) {
	c.qmu.Lock()
	c.reqs = append(c.reqs, cl)
	start := c.claimWriter()
	c.qmu.Unlock()
	switch {
	case !start:
	case len(c.slots) == 1 && anySize(cl.payload) <= inlineWriteMax:
		c.write(true)
	default:
		c.startWriter()
	}
}

// inlineWriteMax is the largest request a caller writes itself (queueCall).
const inlineWriteMax = 16 << 10

// claimWriter reports whether the caller must start a writer — frames are
// queued, sending is allowed and no writer runs — and if so marks one as
// running. c.qmu is held.
func (c *conn) claimWriter() bool {
	if !c.accepted || c.writing || len(c.ctrl)+len(c.reqs) == 0 {
		return false
	}
	c.writing = true
	return true
}

// accept lets frames be sent once the handshake has accepted the
// connection; the welcome, queued first, goes first.
func (c *conn) accept() {
	c.qmu.Lock()
	c.accepted = true
	start := c.claimWriter()
	c.qmu.Unlock()
	if start {
		c.startWriter()
	}
}

// startWriter runs writeLoop in a goroutine of its own, for a caller that
// claimed the writer. An idle connection has no writer goroutine: one runs only while
// frames are queued, which keeps each idle agent's connection a goroutine
// (and its stack) smaller.
func (c *conn) startWriter() {
	if !c.s.spawn(c.writeLoop) {
		c.close(errServerClosed)
	}
}

// next takes what the writer sends next: every queued control frame, else
// the oldest request. When both queues are empty it returns ok false and,
// with release, ends the writer's turn.
func (c *conn) next(release bool) (ctrl []*tunnelv1.ServerToClient, req *call, ok bool) {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	switch {
	case len(c.ctrl) > 0:
		ctrl, c.ctrl = c.ctrl, nil
	case len(c.reqs) > 0:
		req = c.reqs[0]
		c.reqs[0] = nil
		c.reqs = c.reqs[1:]
		if len(c.reqs) == 0 {
			c.reqs = nil
		}
	default:
		if release {
			c.writing = false
		}
		return nil, nil, false
	}
	return ctrl, req, true
}

// pong answers a ping. When no writer is running (an idle connection, the
// heartbeat's case) the reader sends it itself — one goroutine hand-off
// fewer per heartbeat than starting a writer — else it is queued. The
// reader blocks here only on a client whose window is full (1 MiB unread);
// frames from it wait meanwhile, and if it never reads again keepalive
// drops the connection once nothing has been read for PingTimeout. It
// returns false once the connection has ended.
func (c *conn) pong(p *tunnelv1.Pong) bool {
	f := &tunnelv1.ServerToClient{Frame: &tunnelv1.ServerToClient_Pong{Pong: p}}
	c.qmu.Lock()
	if !c.accepted || c.writing {
		c.qmu.Unlock()
		c.queue(nil, f, true)
		return true
	}
	c.writing = true
	c.qmu.Unlock()
	if !c.sendAll([]*tunnelv1.ServerToClient{f}) || !c.flush() {
		return false // writing stays set: no writer starts again
	}
	c.qmu.Lock()
	c.writing = false
	start := c.claimWriter() // frames queued while the pong was sent
	c.qmu.Unlock()
	if start {
		c.startWriter()
	}
	return true
}

// writeLoop is the goroutine that sends on the transport (besides the
// reader's pong and a lone caller's request, which send only while no
// writer runs, holding the writing flag as it would): it sends
// until the queues are empty or the connection ends. Control frames go
// first: the welcome must precede any request, and a cancel should not
// wait behind a long request queue. On a link that buffers, it flushes
// when the queues are empty and ends its turn only if they still are, so
// frames queued meanwhile share the next write and no other writer can
// start while a flush is under way.
func (c *conn) writeLoop() { c.write(false) }

// write is writeLoop's body. A caller writing its own request (inline)
// sends the control frames queued ahead of it and its request, flushes,
// and ends its turn: whatever else is queued goes to a writer goroutine, so
// a caller does not write others' requests (which may be large).
func (c *conn) write(inline bool) {
	flushed, yielded := true, false
	for {
		select {
		case <-c.done:
			return // writing stays set: no writer starts again
		default:
		}
		ctrl, req, ok := c.next(flushed || c.flusher == nil)
		if !ok {
			if flushed || c.flusher == nil {
				return
			}
			if !yielded && len(c.slots) > 1 {
				// Let goroutines that are about to queue a frame (callers
				// woken together) do so, so their frames share the write.
				// With no other call outstanding nobody is about to, and a
				// yield would only wake another thread.
				runtime.Gosched()
				yielded = true
				continue
			}
			if !c.flush() {
				return
			}
			flushed, yielded = true, false
			continue
		}
		flushed = false
		if req != nil {
			if f := c.requestFrame(req); f != nil {
				ctrl = append(ctrl, f)
			}
		}
		if !c.sendAll(ctrl) {
			return
		}
		if inline && req != nil {
			// The caller's own request (the oldest queued) is out.
			if c.flush() {
				c.handOff()
			}
			return
		}
	}
}

// handOff ends an inline writer's turn: a writer goroutine takes over if
// frames were queued meanwhile.
func (c *conn) handOff() {
	c.qmu.Lock()
	more := len(c.ctrl)+len(c.reqs) > 0
	c.writing = more
	c.qmu.Unlock()
	if more {
		c.startWriter()
	}
}

// flush sends what a buffering link holds; it reports false (and closes
// the connection) when that fails.
func (c *conn) flush() bool {
	if c.flusher == nil {
		return true
	}
	if err := c.flusher.flush(); err != nil {
		c.close(status.Errorf(codes.Unavailable, "sending to client: %v", err))
		return false
	}
	return true
}

func (c *conn) sendAll(frames []*tunnelv1.ServerToClient) bool {
	for _, f := range frames {
		if err := c.link.Send(f); err != nil {
			c.close(status.Errorf(codes.Unavailable, "sending to client: %v", err))
			return false
		}
	}
	return true
}

// readLoop is the only goroutine that receives from the transport.
func (c *conn) readLoop() {
	for {
		f, err := c.link.Recv()
		if err != nil {
			c.close(status.Errorf(codes.Unavailable, "receiving from client: %v", err))
			return
		}
		c.lastRecv.Store(time.Now().UnixNano())
		if err := validateClientFrame(f); err != nil {
			c.close(status.Errorf(codes.InvalidArgument, "protocol violation: %s", status.Convert(err).Message()))
			return
		}
		switch fr := f.GetFrame().(type) {
		case *tunnelv1.ClientToServer_Response:
			c.complete(fr.Response)
		case *tunnelv1.ClientToServer_Ping:
			pong := &tunnelv1.Pong{Nonce: fr.Ping.GetNonce()}
			if h := c.s.opts.OnPing; h != nil && fr.Ping.GetHeartbeat() {
				if v, ok := h(c.name); ok {
					pong.AssignmentsVersion = &v
					c.s.opts.Metrics.Heartbeat()
				}
			}
			if !c.pong(pong) {
				return
			}
		case *tunnelv1.ClientToServer_Hello:
			c.close(status.Error(codes.InvalidArgument, "protocol violation: hello after the handshake"))
			return
		}
	}
}

// keepalive pings a silent client and drops the connection once nothing at
// all has arrived for PingTimeout. It returns when the connection ends.
//
// One timer, armed for when the connection will have been silent for
// quiet = PingTimeout - PingInterval (or sooner, once pinging): a client
// that speaks every PingInterval (an agent's own pings) never gets there,
// so an idle agent's connection wakes this goroutine once per quiet period
// instead of once per PingInterval, and the server sends no ping of its own
// — the client's ping, answered by our pong, already proved both ends
// alive. A client silent for quiet is pinged every PingInterval until it
// answers or PingTimeout passes.
func (c *conn) keepalive(ctx context.Context) {
	interval, timeout := c.s.opts.PingInterval, c.s.opts.PingTimeout
	quiet := max(timeout-interval, interval)
	t := time.NewTimer(quiet)
	defer t.Stop()
	var nonce uint64
	for {
		select {
		case <-c.done:
			return
		case <-ctx.Done():
			c.close(status.Error(codes.Unavailable, "transport closed"))
			return
		case <-t.C:
		}
		idle := time.Since(time.Unix(0, c.lastRecv.Load()))
		switch {
		case idle >= timeout:
			c.close(status.Errorf(codes.Unavailable, "keepalive timeout: nothing received for %s", idle.Round(time.Millisecond)))
			return
		case idle >= quiet:
			nonce++
			c.queue(nil, &tunnelv1.ServerToClient{Frame: &tunnelv1.ServerToClient_Ping{
				Ping: &tunnelv1.Ping{Nonce: nonce},
			}}, true)
			t.Reset(min(interval, timeout-idle))
		default:
			t.Reset(quiet - idle)
		}
	}
}
