package roomcluster

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Why the retries: the stream and buckets are replicated by raft groups.
// While a group elects a leader (its leader's server stopped, or lost its
// followers under load: nats-server's election timeout is 4–9 s) a
// JetStream request gets no answer (a timeout) or "no responders", and a
// server that just restarted may not know the stream yet. Every such
// request is safe to repeat: reads are reads, an append carries its
// event_id as the message id (a repeated one is acknowledged with the
// sequence of the copy stored first), a membership put overwrites.
const (
	// attemptTimeout bounds one request; a request left unanswered by a
	// group without a leader is repeated after it.
	attemptTimeout = 2 * time.Second
	minBackoff     = 20 * time.Millisecond
	maxBackoff     = time.Second
	// defaultOpTimeout is the default PublishTimeout: long enough to ride
	// through one raft election.
	defaultOpTimeout = 12 * time.Second
)

// retry runs op until it succeeds, fails for good (permanent) or ctx
// ends, backing off between attempts. Each attempt gets at most
// attemptTimeout of ctx. The last error is returned.
func retry(ctx context.Context, op func(ctx context.Context) error) error {
	wait := minBackoff
	for {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		err := op(actx)
		cancel()
		if err == nil || permanent(err) || ctx.Err() != nil {
			return err
		}
		if !sleep(ctx, wait) {
			return err
		}
		wait = min(2*wait, maxBackoff)
	}
}

// sleep waits d or until ctx ends (false).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// permanent says whether repeating the request cannot help: an answer
// (not found, a revision conflict, a bad request) or a closed connection.
func permanent(err error) bool {
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrMsgNotFound),
		errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, nats.ErrConnectionClosed),
		errors.Is(err, nats.ErrBadSubject), errors.Is(err, nats.ErrMaxPayload):
		return true
	}
	var api *jetstream.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode {
		case jetstream.JSErrCodeBadRequest, jetstream.JSErrCodeStreamWrongLastSequence,
			jetstream.JSErrCodeStreamWrongLastSequenceConstant, jetstream.JSErrCodeStreamMessageExceedsMaximum,
			jetstream.JSErrCodeMessageNotFound:
			return true
		}
	}
	return false
}

// retry is the package's retry bounded by PublishTimeout when ctx has no
// deadline (a gRPC caller without one, a stream's context): no request of
// the Node waits for ever on a bus that does not answer.
func (n *Node) retry(ctx context.Context, op func(ctx context.Context) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.cfg.PublishTimeout)
		defer cancel()
	}
	return retry(ctx, op)
}
