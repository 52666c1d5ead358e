package invoke_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	agentv1 "github.com/croupier/croupier/api/croupier/agent/v1"
	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/invoke"
	"github.com/croupier/croupier/internal/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

func keyed(key string) *croupierv1.InvokeOptions {
	return &croupierv1.InvokeOptions{IdempotencyKey: key}
}

// TestIdempotencyReplay: a repeat with the same key and payload returns the
// stored response without calling the function again — function errors
// included — and the key is passed to the game server.
func TestIdempotencyReplay(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addAgent(t, "a", []string{"1", "2"}, fnGrant)
	first, err := h.invoke(fnGrant, grantPayload(1), keyed("k1"))
	if err != nil {
		t.Fatalf("first call: %v", err)
	}
	for range 3 {
		again, err := h.invoke(fnGrant, grantPayload(1), keyed("k1"))
		if err != nil {
			t.Fatalf("replay: %v", err)
		}
		if !proto.Equal(first, again) {
			t.Fatalf("replay = %v, want the first response %v", again, first)
		}
	}
	calls := h.caller.recorded()
	if len(calls) != 1 {
		t.Fatalf("the function ran %d times for one key, want 1", len(calls))
	}
	if calls[0].req.GetIdempotencyKey() != "k1" {
		t.Fatalf("the game server got idempotency key %q", calls[0].req.GetIdempotencyKey())
	}

	// Function errors are outcomes, remembered like successes.
	h.caller.setAnswer(func(context.Context, string, *agentv1.InvokeRequest) (*agentv1.InvokeResponse, error) {
		return &agentv1.InvokeResponse{Success: false, ErrorCode: "OUT_OF_STOCK", Error: "no swords left"}, nil
	})
	for range 2 {
		resp, err := h.invoke(fnGrant, grantPayload(1), keyed("k2"))
		if err != nil || resp.GetSuccess() || resp.GetErrorCode() != "OUT_OF_STOCK" {
			t.Fatalf("function error with key = %v, %v", resp, err)
		}
	}
	if n := len(h.caller.recorded()); n != 2 {
		t.Fatalf("the failing function ran %d times in total, want 2 (one per key)", n)
	}

	// Keys are scoped per function: the same key on another function runs.
	h.addAgent(t, "a", []string{"1", "2"}, fnGrant, fnStats)
	h.caller.setAnswer(nil)
	if _, err := h.invoke(fnStats, nil, keyed("k1")); err != nil {
		t.Fatalf("same key, other function: %v", err)
	}
	if n := len(h.caller.recorded()); n != 3 {
		t.Fatalf("same key on another function did not run (calls %d, want 3)", n)
	}
}

func TestIdempotencyConflict(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addAgent(t, "a", []string{"1", "2"}, fnGrant)
	if _, err := h.invoke(fnGrant, grantPayload(1), keyed("k")); err != nil {
		t.Fatal(err)
	}
	for name, opts := range map[string]*croupierv1.InvokeOptions{
		"other payload":  keyed("k"),
		"other routing":  {IdempotencyKey: "k", RoutingMode: invoke.ModeTargeted, TargetAgent: "a/1"},
		"other hash key": {IdempotencyKey: "k", RoutingMode: invoke.ModeHash, HashKey: "x"},
	} {
		payload := grantPayload(1)
		if name == "other payload" {
			payload = grantPayload(2)
		}
		_, err := h.invoke(fnGrant, payload, opts)
		ei := wantStatus(t, err, codes.AlreadyExists, "IDEMPOTENCY_KEY_REUSED")
		if ei.GetDetails()["idempotency_key"] != "k" {
			t.Errorf("%s: details %v", name, ei.GetDetails())
		}
	}
	if n := len(h.caller.recorded()); n != 1 {
		t.Fatalf("conflicting repeats ran the function (%d calls, want 1)", n)
	}
}

// TestIdempotencyDefaultRoutingIsLB: routing_mode "" means lb, so a retry
// that spells the default out is the same request.
func TestIdempotencyDefaultRoutingIsLB(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addAgent(t, "a", []string{"1"}, fnGrant)
	if _, err := h.invoke(fnGrant, grantPayload(1), keyed("k")); err != nil {
		t.Fatal(err)
	}
	if _, err := h.invoke(fnGrant, grantPayload(1), &croupierv1.InvokeOptions{IdempotencyKey: "k", RoutingMode: invoke.ModeLB}); err != nil {
		t.Fatalf("retry with explicit lb: %v", err)
	}
}

// TestIdempotencyInProgress: while the first call runs, a repeat is ABORTED;
// after it ends, repeats replay its response.
func TestIdempotencyInProgress(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addAgent(t, "a", []string{"1"}, fnGrant)
	release := make(chan struct{})
	entered := make(chan string, 1)
	h.caller.setEntered(entered)
	h.caller.setAnswer(func(ctx context.Context, agent string, req *agentv1.InvokeRequest) (*agentv1.InvokeResponse, error) {
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return served(agent + "/" + req.GetInstanceId()), nil
	})
	var (
		wg    sync.WaitGroup
		first *croupierv1.InvokeFunctionResponse
	)
	wg.Go(func() {
		var err error
		if first, err = h.invoke(fnGrant, grantPayload(1), keyed("slow")); err != nil {
			t.Errorf("first call: %v", err)
		}
	})
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("first call never reached the caller")
	}
	_, err := h.invoke(fnGrant, grantPayload(1), keyed("slow"))
	wantStatus(t, err, codes.Aborted, "IDEMPOTENCY_KEY_IN_PROGRESS")
	close(release)
	wg.Wait()
	again, err := h.invoke(fnGrant, grantPayload(1), keyed("slow"))
	if err != nil || !proto.Equal(again, first) {
		t.Fatalf("after the first call ended: %v, %v; want its response %v", again, err, first)
	}
	if n := len(h.caller.recorded()); n != 1 {
		t.Fatalf("function ran %d times, want 1", n)
	}
}

// TestIdempotencyPlatformFailureReleasesKey: when the call provably never
// left the server (the transport marks the error NotSent: agent not
// connected, queue full), the key is freed so a retry runs the function.
func TestIdempotencyPlatformFailureReleasesKey(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addAgent(t, "a", []string{"1"}, fnGrant)
	h.caller.setAnswer(func(context.Context, string, *agentv1.InvokeRequest) (*agentv1.InvokeResponse, error) {
		return nil, notSentErr{errUnavailable}
	})
	_, err := h.invoke(fnGrant, grantPayload(1), keyed("k"))
	if !isStatus(err, codes.Unavailable) {
		t.Fatalf("first call = %v, want UNAVAILABLE", err)
	}
	if _, err := h.st.Idempotency().Get(context.Background(), scopeOf(fnGrant, "op:alice"), "k"); err == nil {
		t.Fatal("the key is still claimed after a failure before sending")
	}
	h.caller.setAnswer(nil)
	resp, err := h.invoke(fnGrant, grantPayload(1), keyed("k"))
	if err != nil || !resp.GetSuccess() {
		t.Fatalf("retry after release = %v, %v", resp, err)
	}
	if n := len(h.caller.recorded()); n != 2 {
		t.Fatalf("calls = %d, want 2 (failed attempt + retry)", n)
	}
}

// TestIdempotencyAgentRefusalReleasesKey: an agent that refuses the call
// before any game server sees it (the instance left, the function is
// disabled there) frees the key too.
func TestIdempotencyAgentRefusalReleasesKey(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addAgent(t, "a", []string{"1"}, fnGrant)
	for i, code := range []string{apierr.CodeNoInstance, apierr.CodeFunctionDisabled} {
		h.caller.setAnswer(func(context.Context, string, *agentv1.InvokeRequest) (*agentv1.InvokeResponse, error) {
			return nil, apierr.New(codes.Unavailable, code, "refused by the agent")
		})
		key := fmt.Sprint("k", i)
		if _, err := h.invoke(fnGrant, grantPayload(1), keyed(key)); apierr.Info(err).GetCode() != code {
			t.Fatalf("%s: first call = %v", code, err)
		}
		h.caller.setAnswer(nil)
		if resp, err := h.invoke(fnGrant, grantPayload(1), keyed(key)); err != nil || !resp.GetSuccess() {
			t.Fatalf("%s: retry after the agent's refusal = %v, %v; want it to run", code, resp, err)
		}
	}
}

// TestIdempotencyFailureAfterSendSticks (defect 7a): once the request may
// have reached the game server, its error is the key's outcome. A retry
// with the same key replays it without running the function again, and a
// different payload under the key is IDEMPOTENCY_KEY_REUSED.
func TestIdempotencyFailureAfterSendSticks(t *testing.T) {
	t.Parallel()
	for name, sendErr := range map[string]error{
		"result too large": status.Error(codes.ResourceExhausted, "response of 9000000 bytes exceeds the tunnel frame limit of 4194304"),
		"tunnel lost":      status.Error(codes.Unavailable, "tunnel client \"a\" disconnected: EOF"),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.addAgent(t, "a", []string{"1"}, fnGrant)
			h.caller.setAnswer(func(context.Context, string, *agentv1.InvokeRequest) (*agentv1.InvokeResponse, error) {
				return nil, sendErr
			})
			want := status.Code(sendErr)
			for i := range 3 {
				_, err := h.invoke(fnGrant, grantPayload(1), keyed("k"))
				if !isStatus(err, want) {
					t.Fatalf("call %d = %v, want %s", i+1, err, want)
				}
			}
			_, err := h.invoke(fnGrant, grantPayload(2), keyed("k"))
			wantStatus(t, err, codes.AlreadyExists, "IDEMPOTENCY_KEY_REUSED")
			if n := len(h.caller.recorded()); n != 1 {
				t.Fatalf("the function ran %d times under one key, want 1", n)
			}
		})
	}
}

// TestIdempotencyScopedPerCaller (defect 7b): keys belong to the caller, as
// in payment APIs: another principal using the same key gets a fresh
// execution of their own, never the first caller's stored result.
func TestIdempotencyScopedPerCaller(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addAgent(t, "a", []string{"1"}, fnGrant)
	h.caller.setAnswer(func(_ context.Context, _ string, req *agentv1.InvokeRequest) (*agentv1.InvokeResponse, error) {
		return &agentv1.InvokeResponse{Success: true, Result: mustStruct(map[string]any{"for": req.GetActor()})}, nil
	})
	call := func(actor string) string {
		t.Helper()
		resp, err := h.svc.Invoke(context.Background(), &croupierv1.InvokeFunctionRequest{GameId: game, Env: env, FunctionId: fnGrant,
			Payload: grantPayload(1), Options: keyed("shared")}, actor)
		if err != nil {
			t.Fatalf("%s: %v", actor, err)
		}
		return resp.GetResult().GetFields()["for"].GetStringValue()
	}
	for range 2 {
		for _, actor := range []string{"user:alice", "user:bob"} {
			if got := call(actor); got != actor {
				t.Fatalf("%s got the result computed for %q", actor, got)
			}
		}
	}
	if n := len(h.caller.recorded()); n != 2 {
		t.Fatalf("the function ran %d times, want 2 (once per caller)", n)
	}
}

// TestIdempotencyKeyLimits: a key over 128 bytes or with bytes outside
// printable ASCII is INVALID_ARGUMENT before anything is stored or run,
// and the message does not echo the key.
func TestIdempotencyKeyLimits(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addAgent(t, "a", []string{"1"}, fnGrant)
	for name, key := range map[string]string{
		"3 MB":      strings.Repeat("k", 3<<20),
		"129 bytes": strings.Repeat("k", 129),
		"space":     "a key",
		"newline":   "k\n",
		"non-ascii": "clé",
	} {
		_, err := h.invoke(fnGrant, grantPayload(1), keyed(key))
		wantStatus(t, err, codes.InvalidArgument, "INVALID_ARGUMENT")
		if len(status.Convert(err).Message()) > 200 {
			t.Errorf("%s: the message is %d bytes long", name, len(status.Convert(err).Message()))
		}
	}
	if n := len(h.caller.recorded()); n != 0 {
		t.Fatalf("refused keys ran the function %d times", n)
	}
	if _, err := h.invoke(fnGrant, grantPayload(1), keyed(strings.Repeat("k", 128))); err != nil {
		t.Fatalf("a 128-byte key: %v", err)
	}
}

// TestIdempotencyStaleClaimReclaimed: a pending claim older than
// MaxTimeout+1m belongs to a call that cannot still be running (its server
// died); the next call takes the key over. A younger claim is respected.
func TestIdempotencyStaleClaimReclaimed(t *testing.T) {
	t.Parallel()
	const maxTimeout = 2 * time.Minute
	h := newHarness(t, func(c *invoke.Config) { c.MaxTimeout, c.DefaultTimeout = maxTimeout, time.Minute })
	h.addAgent(t, "a", []string{"1"}, fnGrant)
	scopeKey := scopeOf(fnGrant, "op:alice")
	claim := func(key string, age time.Duration) {
		t.Helper()
		h.clockOffset.Store(int64(-age))
		defer h.clockOffset.Store(0)
		if _, created, err := h.st.Idempotency().Begin(context.Background(), scopeKey, key, "hash-of-a-dead-call", time.Hour); err != nil || !created {
			t.Fatalf("claim %s: created=%v err=%v", key, created, err)
		}
	}

	claim("stale", maxTimeout+time.Minute+30*time.Second)
	resp, err := h.invoke(fnGrant, grantPayload(1), keyed("stale"))
	if err != nil || !resp.GetSuccess() {
		t.Fatalf("call on a stale key = %v, %v; want it to run", resp, err)
	}
	rec, err := h.st.Idempotency().Get(context.Background(), scopeKey, "stale")
	if err != nil || rec.State != store.RecordDone {
		t.Fatalf("stale key after the call: %+v, %v; want done", rec, err)
	}

	claim("young", maxTimeout)
	_, err = h.invoke(fnGrant, grantPayload(1), keyed("young"))
	wantStatus(t, err, codes.AlreadyExists, "IDEMPOTENCY_KEY_REUSED") // the claim's hash differs
	if n := len(h.caller.recorded()); n != 1 {
		t.Fatalf("calls = %d, want 1", n)
	}
}

// TestTimeoutReachesCaller: the call's deadline is on the caller's context,
// and running out of it is DEADLINE_EXCEEDED (TIMEOUT).
func TestTimeoutReachesCaller(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *invoke.Config) { c.DefaultTimeout = 80 * time.Millisecond })
	h.addAgent(t, "a", []string{"1"}, fnGrant)

	start := time.Now()
	if _, err := h.invoke(fnGrant, grantPayload(1), &croupierv1.InvokeOptions{Timeout: 7}); err != nil {
		t.Fatal(err)
	}
	c := h.caller.recorded()[0]
	if !c.hasDL {
		t.Fatal("the caller's context has no deadline")
	}
	if d := c.deadline.Sub(start); d < 6*time.Second || d > 7*time.Second+time.Second {
		t.Fatalf("options.timeout 7 gave the caller a deadline %s away", d)
	}

	h.caller.setAnswer(func(ctx context.Context, _ string, _ *agentv1.InvokeRequest) (*agentv1.InvokeResponse, error) {
		<-ctx.Done() // a handler that never answers
		return nil, ctx.Err()
	})
	start = time.Now()
	_, err := h.invoke(fnGrant, grantPayload(1), keyed("times-out"))
	wantStatus(t, err, codes.DeadlineExceeded, "TIMEOUT")
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("a call with an 80ms default timeout took %s", el)
	}
	// It was sent and may have run: the timeout is the key's outcome.
	_, err = h.invoke(fnGrant, grantPayload(1), keyed("times-out"))
	wantStatus(t, err, codes.DeadlineExceeded, "TIMEOUT")
	if n := len(h.caller.recorded()); n != 2 {
		t.Fatalf("a retry of a timed-out call ran it again (%d calls, want 2)", n)
	}

	// The caller cancelling is CANCELED, not a timeout.
	ctx, cancel := context.WithCancel(context.Background())
	entered := make(chan string, 1)
	h.caller.setEntered(entered)
	h.caller.setAnswer(func(ctx context.Context, _ string, _ *agentv1.InvokeRequest) (*agentv1.InvokeResponse, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	errc := make(chan error, 1)
	go func() {
		_, err := h.svc.Invoke(ctx, &croupierv1.InvokeFunctionRequest{GameId: game, Env: env, FunctionId: fnGrant,
			Payload: grantPayload(1), Options: &croupierv1.InvokeOptions{Timeout: 30}}, "op")
		errc <- err
	}()
	<-entered
	cancel()
	select {
	case err := <-errc:
		wantStatus(t, err, codes.Canceled, "CANCELED")
	case <-time.After(5 * time.Second):
		t.Fatal("a cancelled call did not return")
	}
}
