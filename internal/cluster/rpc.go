package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Headers of forwarded calls.
const (
	// hdrDeadline carries the caller's deadline (Unix nanoseconds), so the
	// node that does the work stops when the caller stops waiting.
	hdrDeadline = "Croupier-Deadline"
	// hdrStatus marks a reply whose body is a google.rpc.Status: the call
	// failed on the far node with that code, message and details.
	hdrStatus = "Croupier-Status"
)

// DefaultRequestTimeout bounds a request whose context has no deadline.
const DefaultRequestTimeout = 30 * time.Second

// Handler does one forwarded call. ctx ends at the caller's deadline or
// when the node closes. A returned error reaches the caller as its gRPC
// status (status.Convert), details included.
type Handler func(ctx context.Context, data []byte) ([]byte, error)

// Handle serves subject with at most workers handlers running at once
// (the subscription's callback blocks when all are busy, so excess calls
// wait in the NATS client's bounded pending buffer). queue, when not
// empty, makes the nodes share the subject (one of them answers each call).
// The handlers stop when the node closes.
func (n *Node) Handle(subject, queue string, workers int, h Handler) error {
	if workers <= 0 {
		workers = 64
	}
	sem := make(chan struct{}, workers)
	cb := func(m *nats.Msg) {
		select {
		case sem <- struct{}{}:
		case <-n.ctx.Done():
			return
		}
		if !n.track() {
			<-sem
			return
		}
		go func() {
			defer n.wg.Done()
			defer func() { <-sem }()
			n.serve(m, h)
		}()
	}
	var err error
	if queue != "" {
		_, err = n.nc.QueueSubscribe(subject, queue, cb)
	} else {
		_, err = n.nc.Subscribe(subject, cb)
	}
	if err != nil {
		return fmt.Errorf("cluster: subscribe %s: %w", subject, err)
	}
	return nil
}

func (n *Node) serve(m *nats.Msg, h Handler) {
	ctx, cancel := context.WithCancel(n.ctx)
	defer cancel()
	if d := m.Header.Get(hdrDeadline); d != "" {
		if ns, err := strconv.ParseInt(d, 10, 64); err == nil {
			var c2 context.CancelFunc
			ctx, c2 = context.WithDeadline(ctx, time.Unix(0, ns))
			defer c2()
		}
	}
	out, err := h(ctx, m.Data)
	if m.Reply == "" {
		return
	}
	reply := nats.NewMsg(m.Reply)
	if err != nil && n.ctx.Err() != nil {
		// Cut short by this node closing, not by the caller.
		err = status.Errorf(codes.Unavailable, "cluster: node %s is shutting down; retry", n.cfg.NodeID)
	}
	if err != nil {
		st := status.Convert(contextStatus(err))
		b, _ := proto.Marshal(st.Proto())
		reply.Header.Set(hdrStatus, "1")
		reply.Data = b
	} else {
		reply.Data = out
	}
	if err := n.nc.PublishMsg(reply); err != nil {
		n.log.Debug("cluster reply not sent", "subject", m.Subject, "err", err)
	}
}

// Request sends data to subject and waits for the reply until ctx ends
// (DefaultRequestTimeout without a deadline). Failures come back as gRPC
// statuses: UNAVAILABLE when nobody serves the subject (the node is gone),
// DEADLINE_EXCEEDED or CANCELED when ctx ends, the far node's status when
// its handler failed.
func (n *Node) Request(ctx context.Context, subject string, data []byte) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultRequestTimeout)
		defer cancel()
	}
	dl, _ := ctx.Deadline()
	m := nats.NewMsg(subject)
	m.Header.Set(hdrDeadline, strconv.FormatInt(dl.UnixNano(), 10))
	m.Data = data
	r, err := n.nc.RequestMsgWithContext(ctx, m)
	switch {
	case err == nil:
	case errors.Is(err, nats.ErrNoResponders):
		return nil, status.Errorf(codes.Unavailable, "cluster: nobody serves %s (the node holding it is gone); retry", subject)
	case ctx.Err() != nil:
		return nil, status.FromContextError(ctx.Err()).Err()
	default:
		return nil, status.Errorf(codes.Unavailable, "cluster: request %s: %v", subject, err)
	}
	if r.Header.Get(hdrStatus) != "" {
		var sp spb.Status
		if err := proto.Unmarshal(r.Data, &sp); err != nil {
			return nil, status.Errorf(codes.Internal, "cluster: undecodable error reply from %s", subject)
		}
		return nil, status.FromProto(&sp).Err()
	}
	return r.Data, nil
}

func contextStatus(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return status.FromContextError(err).Err()
	}
	return err
}
