package tunnel

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	tunnelv1 "github.com/croupier/croupier/api/croupier/tunnel/v1"
)

// lpSession is the server end of one long-poll connection. It is the
// serverLink the core sees: frames from /send requests come out of Recv,
// frames given to Send go out in /poll responses.
//
// Delivery is exactly-once in both directions over retried HTTP requests:
//   - client -> server: batches carry seq 1, 2, ...; a batch is applied
//     atomically once, and a repeated seq is acknowledged again without being
//     applied;
//   - server -> client: the last batch stays "unacked" until a poll carries
//     its seq as ack; a poll that does not acknowledge it receives it again.
type lpSession struct {
	id  string
	lim limits

	// ctx carries the /open request's values but not its cancellation; it
	// is the connection's context in the core and ends with the session.
	ctx    context.Context
	cancel context.CancelFunc

	// Recv side, used by the core's reader goroutine only.
	hello      *tunnelv1.ClientToServer
	helloTaken bool
	cur        []*tunnelv1.ClientToServer

	// in carries whole client batches, so a batch is applied all or nothing.
	in chan []*tunnelv1.ClientToServer
	// sendLock serialises /send requests; it guards lastApplied.
	sendLock    chan struct{}
	lastApplied uint64

	mu       sync.Mutex
	out      []*tunnelv1.ServerToClient
	outBytes int
	outSeq   uint64
	unacked  *tunnelv1.LongPollPollResponse
	outSig   chan struct{} // frames were added to out
	spaceSig chan struct{} // out was emptied

	acceptOnce sync.Once
	accepted   chan struct{} // closed at the first Send (the welcome)

	closeOnce sync.Once
	done      chan struct{}
	err       error // set before done closes
}

const sessionInBatches = 4

func newLPSession(parent context.Context, lim limits, hello *tunnelv1.Hello) *lpSession {
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	return &lpSession{
		id:       newID(),
		lim:      lim,
		ctx:      ctx,
		cancel:   cancel,
		hello:    &tunnelv1.ClientToServer{Frame: &tunnelv1.ClientToServer_Hello{Hello: hello}},
		in:       make(chan []*tunnelv1.ClientToServer, sessionInBatches),
		sendLock: make(chan struct{}, 1),
		outSig:   make(chan struct{}, 1),
		spaceSig: make(chan struct{}, 1),
		accepted: make(chan struct{}),
		done:     make(chan struct{}),
	}
}

func (s *lpSession) close(err error) {
	s.closeOnce.Do(func() {
		if err == nil {
			err = status.Error(codes.Unavailable, "long-poll session closed")
		}
		s.err = err
		close(s.done)
		s.cancel()
	})
}

// closedErr is what requests on a closed session get.
func (s *lpSession) closedErr() error {
	return status.Errorf(codes.Unavailable, "long-poll session closed: %s", status.Convert(s.err).Message())
}

// Recv implements serverLink.
func (s *lpSession) Recv() (*tunnelv1.ClientToServer, error) {
	if !s.helloTaken {
		s.helloTaken = true
		return s.hello, nil
	}
	for len(s.cur) == 0 {
		select {
		case b := <-s.in:
			s.cur = b
		case <-s.done:
			return nil, s.closedErr()
		}
	}
	f := s.cur[0]
	s.cur[0] = nil
	s.cur = s.cur[1:]
	return f, nil
}

// Send implements serverLink. It blocks while the outgoing buffer is full,
// i.e. while the client is not polling: that is the backpressure that fills
// the connection's queue and makes callers wait.
func (s *lpSession) Send(f *tunnelv1.ServerToClient) error {
	size := proto.Size(f)
	budget := s.lim.maxBatchBytes() - batchOverheadBytes
	s.mu.Lock()
	for len(s.out) >= s.lim.maxBatchFrames || (len(s.out) > 0 && s.outBytes+size > budget) {
		s.mu.Unlock()
		select {
		case <-s.spaceSig:
		case <-s.done:
			return s.closedErr()
		}
		s.mu.Lock()
	}
	s.out = append(s.out, f)
	s.outBytes += size
	s.mu.Unlock()
	signal(s.outSig)
	s.acceptOnce.Do(func() { close(s.accepted) })
	return nil
}

// applySend hands a client batch to the core once, however often it is sent.
func (s *lpSession) applySend(ctx context.Context, seq uint64, frames []*tunnelv1.ClientToServer) error {
	select {
	case s.sendLock <- struct{}{}:
	case <-ctx.Done():
		return ctxError(ctx)
	case <-s.done:
		return s.closedErr()
	}
	defer func() { <-s.sendLock }()
	if seq <= s.lastApplied {
		return nil // a retry of a batch already applied
	}
	if seq != s.lastApplied+1 {
		return status.Errorf(codes.FailedPrecondition, "send batch seq %d out of order: expected %d", seq, s.lastApplied+1)
	}
	if len(frames) > 0 {
		select {
		case s.in <- frames:
		case <-ctx.Done():
			return ctxError(ctx)
		case <-s.done:
			return s.closedErr()
		}
	}
	s.lastApplied = seq
	return nil
}

// poll returns the next server batch: the unacknowledged one again, or new
// frames, waiting up to wait for some. An empty response (seq 0) means
// nothing arrived in time.
func (s *lpSession) poll(ctx context.Context, ack uint64, wait time.Duration) (*tunnelv1.LongPollPollResponse, error) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	s.mu.Lock()
	if ack > s.outSeq {
		s.mu.Unlock()
		return nil, status.Errorf(codes.FailedPrecondition, "poll acknowledges batch %d, but only %d were sent", ack, s.outSeq)
	}
	if s.unacked != nil && ack >= s.unacked.GetSeq() {
		s.unacked = nil
	}
	for {
		if s.unacked != nil {
			b := s.unacked
			s.mu.Unlock()
			return b, nil
		}
		if len(s.out) > 0 {
			s.outSeq++
			b := &tunnelv1.LongPollPollResponse{Seq: s.outSeq, Frames: s.out}
			s.unacked = b
			s.out, s.outBytes = nil, 0
			s.mu.Unlock()
			signal(s.spaceSig)
			return b, nil
		}
		s.mu.Unlock()
		select {
		case <-s.outSig:
		case <-timer.C:
			return &tunnelv1.LongPollPollResponse{}, nil
		case <-ctx.Done():
			return nil, ctxError(ctx)
		case <-s.done:
			return nil, s.closedErr()
		}
		s.mu.Lock()
	}
}

// signal wakes one waiter on a capacity-1 channel without blocking.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
