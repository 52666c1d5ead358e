package roomcluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Pull settings of a follower's consumer. A consumer whose server died
// sends no heartbeats: it is replaced within 2×followHeartbeat.
const (
	followHeartbeat = 2 * time.Second
	followExpiry    = 10 * time.Second
	// followInactive is how long the server keeps a consumer its follower
	// abandoned without deleting it (a crash, a partition).
	followInactive = time.Minute
)

var errGap = errors.New("a message of the consumer was lost in flight")

// follower reads the event log in order from a cursor and hands each
// message to handle, once. It is what nats.go's ordered consumer does,
// with two differences that matter here: the cursor is always a stream
// sequence (an ordered consumer that has delivered nothing yet restarts
// at "new messages" after a reset, skipping what was published
// meanwhile), and a lost consumer is recreated after a short backoff
// (20 ms doubling to 1 s) rather than 1 s doubling to 10 s.
type follower struct {
	js     jetstream.JetStream
	next   uint64 // stream sequence of the next message to hand over
	handle func(jetstream.Msg, *jetstream.MsgMetadata)
	onErr  func(error)
}

// run follows until ctx ends. The caller owns the goroutine it runs on.
func (f *follower) run(ctx context.Context) {
	wait := minBackoff
	for ctx.Err() == nil {
		progressed, err := f.once(ctx)
		if ctx.Err() != nil {
			return
		}
		if progressed {
			wait = minBackoff
		}
		if f.onErr != nil {
			f.onErr(err)
		}
		if !sleep(ctx, wait) {
			return
		}
		wait = min(2*wait, maxBackoff)
	}
}

// once creates a consumer at the cursor and hands over its messages until
// it fails; progressed says whether any message was handed over.
func (f *follower) once(ctx context.Context) (progressed bool, err error) {
	cctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	cons, err := f.js.CreateConsumer(cctx, StreamName, jetstream.ConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: f.next,
		AckPolicy: jetstream.AckNonePolicy, FilterSubject: subjectPrefix + ">",
		Replicas: 1, MemoryStorage: true, InactiveThreshold: followInactive,
	})
	cancel()
	if err != nil {
		return false, fmt.Errorf("create a consumer at seq %d: %w", f.next, err)
	}
	defer func() {
		// Best effort: an abandoned consumer goes after followInactive.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), attemptTimeout)
		_ = f.js.DeleteConsumer(dctx, StreamName, cons.CachedInfo().Name)
		cancel()
	}()
	it, err := cons.Messages(jetstream.PullHeartbeat(followHeartbeat), jetstream.PullExpiry(followExpiry),
		jetstream.WithMessagesErrOnMissingHeartbeat(true))
	if err != nil {
		return false, fmt.Errorf("read the consumer: %w", err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	var delivered uint64 // consumer sequence of the last message received
	for {
		m, err := it.Next()
		if err != nil {
			return progressed, fmt.Errorf("read the consumer at seq %d: %w", f.next, err)
		}
		meta, err := m.Metadata()
		if err != nil {
			return progressed, fmt.Errorf("message without metadata: %w", err)
		}
		if meta.Sequence.Consumer != delivered+1 {
			return progressed, fmt.Errorf("%w (consumer seq %d after %d)", errGap, meta.Sequence.Consumer, delivered)
		}
		delivered = meta.Sequence.Consumer
		if meta.Sequence.Stream < f.next {
			continue
		}
		f.handle(m, meta)
		f.next = meta.Sequence.Stream + 1
		progressed = true
	}
}

// logEnd is the sequence after the last message of the stream: where a
// follower starts to see only what is published from now on.
func (n *Node) logEnd(ctx context.Context) (uint64, error) {
	var last uint64
	err := n.retry(ctx, func(ctx context.Context) error {
		info, err := n.stream.Info(ctx)
		if err != nil {
			return err
		}
		last = info.State.LastSeq
		return nil
	})
	return last + 1, err
}
