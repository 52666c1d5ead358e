package idempotency_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/idempotency"
	"github.com/croupier/croupier/internal/store/storetest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

func newKeeper(t *testing.T) *idempotency.Keeper {
	t.Helper()
	st := storetest.SQLite(t)
	return idempotency.New(idempotency.Config{Window: time.Hour, StaleAfter: time.Minute,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, st.Idempotency())
}

func request(caller, key string) idempotency.Request {
	p, _ := structpb.NewStruct(map[string]any{"player_id": "p1"})
	return idempotency.Request{Op: "invoke", Caller: caller, Game: "demo", Env: "dev", Function: "player.ban",
		Options: &croupierv1.InvokeOptions{IdempotencyKey: key}, Payload: p}
}

// TestStoredErrorReplaysWithItsErrorInfo: a stored error comes back with
// its code and ErrorInfo, its message saying it is a replay.
func TestStoredErrorReplaysWithItsErrorInfo(t *testing.T) {
	t.Parallel()
	k := newKeeper(t)
	ctx := context.Background()
	claim, err := k.Begin(ctx, request("user:alice", "k"), &croupierv1.InvokeFunctionResponse{})
	if err != nil || claim.Replayed {
		t.Fatalf("first Begin: %v %v", claim, err)
	}
	claim.Fail(ctx, apierr.New(codes.DeadlineExceeded, apierr.CodeTimeout, "the call did not finish before its deadline"))

	_, err = k.Begin(ctx, request("user:alice", "k"), &croupierv1.InvokeFunctionResponse{})
	if status.Code(err) != codes.DeadlineExceeded || apierr.Info(err).GetCode() != apierr.CodeTimeout {
		t.Fatalf("replay = %v; want DEADLINE_EXCEEDED with ErrorInfo TIMEOUT", err)
	}
	if m := status.Convert(err).Message(); !strings.Contains(m, "idempotency key k") || !strings.Contains(m, "use a new key") {
		t.Fatalf("replayed message %q does not say it is a replay", m)
	}
	// Another caller's key of the same name is free.
	claim, err = k.Begin(ctx, request("user:bob", "k"), &croupierv1.InvokeFunctionResponse{})
	if err != nil || claim.Replayed {
		t.Fatalf("bob's Begin: %v %v", claim, err)
	}
	claim.Complete(ctx, &croupierv1.InvokeFunctionResponse{Success: true, Instance: "a/1"})
	resp := &croupierv1.InvokeFunctionResponse{}
	claim, err = k.Begin(ctx, request("user:bob", "k"), resp)
	if err != nil || !claim.Replayed || resp.GetInstance() != "a/1" {
		t.Fatalf("bob's replay: %v %v %v", claim, resp, err)
	}
}

func TestCheckKey(t *testing.T) {
	t.Parallel()
	for key, ok := range map[string]bool{
		"":                         true,
		"2b0e6c1e-8d1f-4c9a":       true,
		"approval:apr_x1":          true,
		strings.Repeat("k", 128):   true,
		strings.Repeat("k", 129):   false,
		"with space":               false,
		"tab\t":                    false,
		"del\x7f":                  false,
		"é":                        false,
		strings.Repeat("k", 3<<20): false,
	} {
		err := idempotency.CheckKey(key)
		if (err == nil) != ok {
			t.Errorf("CheckKey(%.20q…) = %v, want ok=%v", key, err, ok)
		}
		if err != nil && (status.Code(err) != codes.InvalidArgument || len(status.Convert(err).Message()) > 200) {
			t.Errorf("CheckKey(%.20q…) = %v; want a short INVALID_ARGUMENT", key, err)
		}
	}
}

// TestNotSent: only errors marked by the transport release a key.
func TestNotSent(t *testing.T) {
	t.Parallel()
	base := status.Error(codes.Unavailable, "tunnel client \"a\" is not connected")
	if idempotency.NotSent(base) {
		t.Fatal("an unmarked error counts as not sent")
	}
	marked := idempotency.MarkNotSent(base)
	if !idempotency.NotSent(marked) || status.Code(marked) != codes.Unavailable || status.Convert(marked).Message() != status.Convert(base).Message() {
		t.Fatalf("marked error %v lost its status or mark", marked)
	}
}
