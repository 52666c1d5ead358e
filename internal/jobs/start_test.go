package jobs

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	agentv1 "github.com/croupier/croupier/api/croupier/agent/v1"
	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/invoke"
	"github.com/croupier/croupier/internal/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestStartRefusesBroadcast(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	_, err := h.svc.Start(t.Context(), &croupierv1.InvokeJobRequest{GameId: game, Env: env, FunctionId: fn,
		Options: &croupierv1.InvokeOptions{RoutingMode: invoke.ModeBroadcast}}, "op")
	ei := wantStatus(t, err, codes.InvalidArgument, apierr.CodeInvalidArgument)
	if ei.GetDetails()["field"] != "options.routing_mode" || !strings.Contains(ei.GetMessage(), "one instance") {
		t.Fatalf("refusal = %v", ei)
	}
	if h.prep.calls != 0 || len(h.caller.startCalls()) != 0 {
		t.Fatal("a refused broadcast job was prepared or dispatched")
	}
}

func TestStartPassesPrepareErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.prep.err = apierr.New(codes.NotFound, apierr.CodeFunctionNotFound, "no such function")
	_, err := h.svc.Start(t.Context(), &croupierv1.InvokeJobRequest{GameId: game, Env: env, FunctionId: fn}, "op")
	wantStatus(t, err, codes.NotFound, apierr.CodeFunctionNotFound)
	list, _, lerr := h.st.Jobs().List(context.Background(), store.JobFilter{})
	if lerr != nil || len(list) != 0 {
		t.Fatalf("a refused job was stored: %v, %v", list, lerr)
	}
}

// TestStartDispatches: the job is stored pending, sent to the chosen
// instance with the invocation, and becomes running with the instance's
// incarnation.
func TestStartDispatches(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.prep.setTarget("a", "2")
	id := h.start(t, &croupierv1.InvokeOptions{RoutingMode: invoke.ModeTargeted, TargetAgent: "a/2"})
	if !strings.HasPrefix(id, "job_") {
		t.Fatalf("job id %q", id)
	}
	j := h.waitStatus(t, id, store.JobRunning)
	if j.Instance != "a/2" || j.Incarnation != "inc-1" || j.StartedAt.IsZero() || j.Actor != "op:alice" ||
		j.GameID != game || j.Env != env || j.FunctionID != fn {
		t.Fatalf("running job = %+v", j)
	}
	var payload map[string]any
	if err := json.Unmarshal(j.Payload, &payload); err != nil || payload["subject"] != "hi" {
		t.Fatalf("stored payload %s (%v)", j.Payload, err)
	}
	starts := h.caller.startCalls()
	if len(starts) != 1 {
		t.Fatalf("%d StartJob calls, want 1", len(starts))
	}
	s := starts[0]
	inv := s.req.GetInvocation()
	if s.agent != "a" || s.req.GetJobId() != id || inv.GetInvocationId() != id || inv.GetInstanceId() != "2" ||
		inv.GetFunctionId() != fn || inv.GetGameId() != game || inv.GetEnv() != env || inv.GetActor() != "op:alice" ||
		inv.GetConfig()["batch"] != "10" || inv.GetPayload().GetFields()["subject"].GetStringValue() != "hi" {
		t.Fatalf("StartJob(%s, %v)", s.agent, s.req)
	}
	got, err := h.svc.Get(t.Context(), id)
	if err != nil || got.GetStatus() != store.JobRunning || got.GetInstance() != "a/2" || got.GetStartedAt() == 0 {
		t.Fatalf("Get = %v, %v", got, err)
	}
}

func TestStartDispatchFailure(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.caller.onStart(func(context.Context, string, *agentv1.StartJobRequest) (*agentv1.StartJobResponse, error) {
		return nil, status.Error(codes.Unavailable, "agent a is not connected")
	})
	id := h.start(t, nil)
	h.waitStatus(t, id, store.JobFailed)
	j := h.wantEnded(t, id, store.JobFailed, "START_FAILED")
	for _, want := range []string{"a/1", "Unavailable", "agent a is not connected"} {
		if !strings.Contains(j.Error, want) {
			t.Errorf("error %q does not mention %q", j.Error, want)
		}
	}
	evs := h.events(t, id)
	if len(evs) != 1 || evs[0].Seq != 1 || !strings.Contains(string(evs[0].Data), `"error_code":"START_FAILED"`) {
		t.Fatalf("events = %+v", evs)
	}
}

// TestStartIdempotent: the same key and payload from the same caller return
// the same job (with its current status) and start it once; another payload
// is refused.
func TestStartIdempotent(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	opts := &croupierv1.InvokeOptions{IdempotencyKey: "mail-1"}
	id := h.start(t, opts)
	h.waitStatus(t, id, store.JobRunning)
	for range 3 {
		resp, err := h.svc.Start(t.Context(), &croupierv1.InvokeJobRequest{GameId: game, Env: env, FunctionId: fn,
			Payload: mustStruct(map[string]any{"subject": "hi"}), Options: opts}, "op:alice")
		if err != nil {
			t.Fatalf("repeat: %v", err)
		}
		if resp.GetJobId() != id || resp.GetStatus() != store.JobRunning || !resp.GetSuccess() {
			t.Fatalf("repeat = %v; want job %s running", resp, id)
		}
	}
	if n := len(h.caller.startCalls()); n != 1 {
		t.Fatalf("the job was dispatched %d times, want once", n)
	}
	_, err := h.svc.Start(t.Context(), &croupierv1.InvokeJobRequest{GameId: game, Env: env, FunctionId: fn,
		Payload: mustStruct(map[string]any{"subject": "other"}), Options: opts}, "op:alice")
	wantStatus(t, err, codes.AlreadyExists, apierr.CodeIdempotencyConflict)
	list, _, _ := h.st.Jobs().List(context.Background(), store.JobFilter{})
	if len(list) != 1 {
		t.Fatalf("%d jobs stored, want 1", len(list))
	}
	if list[0].IdempotencyKey != "mail-1" {
		t.Fatalf("stored idempotency key %q", list[0].IdempotencyKey)
	}
}

// TestDispatchAfterFastCompletion: the game server may report START and DONE
// before its StartJob answer reaches the server. The job is complete then;
// nothing must be cancelled on the instance.
func TestDispatchAfterFastCompletion(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	answered := make(chan struct{})
	h.caller.onStart(func(ctx context.Context, _ string, req *agentv1.StartJobRequest) (*agentv1.StartJobResponse, error) {
		select {
		case <-answered:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return &agentv1.StartJobResponse{InstanceId: "1", Incarnation: "inc-1"}, nil
	})
	id := h.start(t, nil)
	waitFor(t, 5*time.Second, "StartJob to be called", func() bool { return len(h.caller.startCalls()) == 1 })
	h.mustReport(t, id, 2, ev(1, croupierv1.EventType_START, "started"), withData(ev(2, croupierv1.EventType_DONE, "done"), map[string]any{"n": 1}))
	close(answered)
	h.svc.wg.Wait()
	h.wantEnded(t, id, store.JobCompleted, "")
	if c := h.caller.cancelCalls(); len(c) != 0 {
		t.Fatalf("a completed job was cancelled on its instance: %v", c[0].req)
	}
}
