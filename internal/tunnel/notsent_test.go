package tunnel

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// isNotSent is how the invoke service reads the mark (it imports no tunnel).
func isNotSent(err error) bool {
	var ns interface{ NotSent() bool }
	return errors.As(err, &ns) && ns.NotSent()
}

// TestNotSentMarksOnlyUnsentCalls: a call that never left the server (no
// such client, deadline already passed, oversized) is marked NotSent, so an
// idempotency key may be released; a call the client received — answered
// with an error or cancelled while running — is not.
func TestNotSentMarksOnlyUnsentCalls(t *testing.T) {
	e := newEnv(t, transports[0], ServerOptions{})
	reg := NewHandlerRegistry()
	entered := make(chan struct{}, 1)
	mustRegister(t, reg, func(ctx context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		if req.GetValue() == "hang" {
			entered <- struct{}{}
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return nil, errors.New("handler failed")
	})
	e.startClient(ClientOptions{Name: "a", Handlers: reg})

	_, err := e.srv.Call(context.Background(), "nobody", wrapperspb.String("x"))
	wantCode(t, err, codes.Unavailable)
	if !isNotSent(err) {
		t.Errorf("call to a client that is not connected: %v is not marked NotSent", err)
	}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.srv.Call(done, "a", wrapperspb.String("x")); !isNotSent(err) {
		t.Errorf("call with a finished context: %v is not marked NotSent", err)
	}

	_, err = e.srv.Call(context.Background(), "a", wrapperspb.String("x"))
	wantCode(t, err, codes.Unknown)
	if isNotSent(err) {
		t.Errorf("a handler's error %v is marked NotSent", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-entered:
			cancel() // the handler runs: the call was sent
		case <-time.After(10 * time.Second):
		}
	}()
	_, err = e.srv.Call(ctx, "a", wrapperspb.String("hang"))
	wantCode(t, err, codes.Canceled)
	if isNotSent(err) {
		t.Errorf("a call cancelled while its handler ran: %v is marked NotSent", err)
	}
}
