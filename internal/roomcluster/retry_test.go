package roomcluster

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestPermanent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{context.DeadlineExceeded, false},
		{nats.ErrNoResponders, false},
		{jetstream.ErrNoStreamResponse, false},
		{&jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}, false},
		{fmt.Errorf("get: %w", jetstream.ErrKeyNotFound), true},
		{jetstream.ErrMsgNotFound, true},
		{nats.ErrConnectionClosed, true},
		{&jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamWrongLastSequence}, true},
	} {
		if got := permanent(tc.err); got != tc.want {
			t.Errorf("permanent(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestRetry(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Transient errors are repeated until the answer comes.
	n := 0
	err := retry(ctx, func(context.Context) error {
		if n++; n < 3 {
			return nats.ErrNoResponders
		}
		return nil
	})
	if err != nil || n != 3 {
		t.Fatalf("retry: %v after %d attempts, want success after 3", err, n)
	}
	// A permanent answer is returned at once.
	n = 0
	err = retry(ctx, func(context.Context) error { n++; return jetstream.ErrKeyNotFound })
	if !errors.Is(err, jetstream.ErrKeyNotFound) || n != 1 {
		t.Fatalf("retry: %v after %d attempts, want ErrKeyNotFound after 1", err, n)
	}
	// The caller's deadline bounds the repeats.
	short, cancel2 := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel2()
	err = retry(short, func(context.Context) error { return nats.ErrNoResponders })
	if !errors.Is(err, nats.ErrNoResponders) || short.Err() == nil {
		t.Fatalf("retry past its deadline: %v (ctx %v)", err, short.Err())
	}
}
