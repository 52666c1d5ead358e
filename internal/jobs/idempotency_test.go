package jobs

import (
	"context"
	"strings"
	"testing"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/idempotency"
	"github.com/croupier/croupier/internal/store"
	"google.golang.org/grpc/codes"
)

func (h *harness) startAs(t *testing.T, actor string, opts *croupierv1.InvokeOptions) (*croupierv1.InvokeJobResponse, error) {
	t.Helper()
	return h.svc.Start(t.Context(), &croupierv1.InvokeJobRequest{GameId: game, Env: env, FunctionId: fn,
		Payload: mustStruct(map[string]any{"subject": "hi"}), Options: opts}, actor)
}

// TestStartIdempotencyScopedPerCaller (defect 7b): another caller using the
// same key starts a job of their own; each caller's retries return theirs.
func TestStartIdempotencyScopedPerCaller(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	opts := &croupierv1.InvokeOptions{IdempotencyKey: "mail-1"}
	ids := map[string]string{}
	for range 2 {
		for _, actor := range []string{"user:alice", "user:bob"} {
			resp, err := h.startAs(t, actor, opts)
			if err != nil {
				t.Fatalf("%s: %v", actor, err)
			}
			if prev, ok := ids[actor]; ok && prev != resp.GetJobId() {
				t.Fatalf("%s's retry got job %s, want their job %s", actor, resp.GetJobId(), prev)
			}
			ids[actor] = resp.GetJobId()
		}
	}
	if ids["user:alice"] == ids["user:bob"] {
		t.Fatalf("bob got alice's job %s", ids["user:alice"])
	}
	waitFor(t, 5*time.Second, "both jobs to be dispatched", func() bool { return len(h.caller.startCalls()) == 2 })
	h.svc.wg.Wait()
	if n := len(h.caller.startCalls()); n != 2 {
		t.Fatalf("%d dispatches, want 2 (one per caller)", n)
	}
}

// TestStartIdempotencyStaleClaimReclaimed: a claim left pending by a server
// that died between claiming the key and storing the job is taken over
// (the rule InvokeFunction follows), instead of IN_PROGRESS for the window.
func TestStartIdempotencyStaleClaimReclaimed(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.storeShift.Store(int64(-2 * time.Minute))
	// The claim under the scope jobs used before keys were per caller, and
	// under today's.
	for _, scope := range []string{"job/" + game + "/" + env + "/" + fn, "job/" + game + "/" + env + "/" + fn + "/user:alice"} {
		if _, created, err := h.st.Idempotency().Begin(context.Background(), scope, "k", "hash-of-a-dead-request", time.Hour); err != nil || !created {
			t.Fatalf("claim: %v %v", created, err)
		}
	}
	h.storeShift.Store(0)
	resp, err := h.startAs(t, "user:alice", &croupierv1.InvokeOptions{IdempotencyKey: "k"})
	if err != nil || resp.GetJobId() == "" {
		t.Fatalf("start on a stale claim = %v, %v; want a new job", resp, err)
	}
	h.svc.wg.Wait()
}

// TestStartIdempotencyKeyLimits: an oversized or non-printable key is
// INVALID_ARGUMENT and nothing is stored.
func TestStartIdempotencyKeyLimits(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, key := range []string{strings.Repeat("k", 3<<20), strings.Repeat("k", 129), "a b", "k\x00"} {
		_, err := h.startAs(t, "user:alice", &croupierv1.InvokeOptions{IdempotencyKey: key})
		wantStatus(t, err, codes.InvalidArgument, apierr.CodeInvalidArgument)
	}
	list, _, err := h.st.Jobs().List(context.Background(), store.JobFilter{})
	if err != nil || len(list) != 0 {
		t.Fatalf("jobs after refused keys: %d, %v", len(list), err)
	}
}

// TestStartIdempotencyRecoversJobOfDeadClaim: a server that stored the job
// but died before recording it under the key left a stale pending claim;
// the retry returns that job instead of creating a second one.
func TestStartIdempotencyRecoversJobOfDeadClaim(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	opts := &croupierv1.InvokeOptions{IdempotencyKey: "k"}
	payload := mustStruct(map[string]any{"subject": "hi"})
	hash, err := idempotency.Request{Op: "job", Caller: "user:alice", Game: game, Env: env, Function: fn,
		Options: opts, Payload: payload}.Hash()
	if err != nil {
		t.Fatal(err)
	}
	h.storeShift.Store(int64(-2 * time.Minute))
	if _, created, err := h.st.Idempotency().Begin(ctx, "job/"+game+"/"+env+"/"+fn+"/user:alice", "k", hash, time.Hour); err != nil || !created {
		t.Fatalf("claim: %v %v", created, err)
	}
	orphan := &store.Job{ID: "job_orphan", GameID: game, Env: env, FunctionID: fn, Status: store.JobPending,
		Instance: "a/1", Payload: []byte(`{"subject":"hi"}`), Actor: "user:alice", IdempotencyKey: "k"}
	if err := h.st.Jobs().Create(ctx, orphan); err != nil {
		t.Fatal(err)
	}
	h.storeShift.Store(0)

	for range 2 {
		resp, err := h.startAs(t, "user:alice", opts)
		if err != nil || resp.GetJobId() != "job_orphan" {
			t.Fatalf("retry = %v, %v; want the stored job job_orphan", resp, err)
		}
	}
	h.svc.wg.Wait()
	if list, _, _ := h.st.Jobs().List(ctx, store.JobFilter{}); len(list) != 1 {
		t.Fatalf("%d jobs stored, want 1", len(list))
	}
	if n := len(h.caller.startCalls()); n != 0 {
		t.Fatalf("the retry dispatched %d jobs", n)
	}
}
