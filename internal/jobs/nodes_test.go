package jobs

import (
	"context"
	"testing"

	agentv1 "github.com/croupier/croupier/api/croupier/agent/v1"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/store"
)

// peer is a second server node on the harness's database and registry:
// with several nodes a job's reports arrive through whichever node holds
// its agent's tunnel, so the node that created the job may see none.
func (h *harness) peer(t *testing.T) *Service {
	t.Helper()
	svc := New(h.svc.cfg, h.st, h.prep, h.caller, h.reg)
	svc.now = h.clock.Now
	if err := svc.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.wg.Wait)
	return svc
}

// TestReportsMoveBetweenNodes: a job created on node A reports through
// node B (the agent's tunnel is there), then B dies and the agent moves
// back to A. A's cached copy of the job is behind the database; the
// reports that follow the ones B stored must still complete the job.
// Before the fix A answered EVENT_GAP for ever (it expected seq 1) and
// the job stayed running.
func TestReportsMoveBetweenNodes(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.startRunning(t) // created and dispatched on A
	b := h.peer(t)
	report := func(svc *Service, evs ...*croupierv1.JobEvent) *croupierv1.ReportJobEventsResponse {
		t.Helper()
		resp, err := svc.Report(t.Context(), &croupierv1.ReportJobEventsRequest{AgentId: "a", JobId: id, Instance: "a/1", Events: evs})
		if err != nil {
			t.Fatalf("Report: %v", err)
		}
		return resp
	}
	if resp := report(b, ev(1, croupierv1.EventType_START, "started"), progress(2, 0.5)); resp.GetAckedSeq() != 2 {
		t.Fatalf("B acked %d, want 2", resp.GetAckedSeq())
	}
	// B stored seq 3 but died before acknowledging it: the game server
	// re-sends 3 with 4 through A.
	report(b, progress(3, 0.7))
	resp := report(h.svc, progress(3, 0.7), withData(ev(4, croupierv1.EventType_DONE, "done"), map[string]any{"sent": 5.0}))
	if resp.GetAckedSeq() != 4 || resp.GetStatus() != store.JobCompleted {
		t.Fatalf("A answered acked %d status %q; want 4 completed", resp.GetAckedSeq(), resp.GetStatus())
	}
	j := h.wantEnded(t, id, store.JobCompleted, "")
	if j.Progress != 1 || len(h.events(t, id)) != 4 {
		t.Fatalf("job progress %v with %d events; want 1 and 4", j.Progress, len(h.events(t, id)))
	}
}

// TestJobEndedOnAnotherNode: a node that created a job which then ran to
// its end through another node forgets it within resyncAfter, and never
// appends a server-side failure after the stored end (its copy still said
// running).
func TestJobEndedOnAnotherNode(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.startRunning(t)
	b := h.peer(t)
	if _, err := b.Report(t.Context(), &croupierv1.ReportJobEventsRequest{AgentId: "a", JobId: id, Instance: "a/1",
		Events: []*croupierv1.JobEvent{ev(1, croupierv1.EventType_START, "started"), ev(2, croupierv1.EventType_DONE, "done")}}); err != nil {
		t.Fatal(err)
	}
	// The game server then restarts: A's stale copy would call it lost.
	h.setInstances(t, "a", map[string]string{"1": "inc-2"})
	h.clock.Advance(resyncAfter)
	h.svc.check()
	h.wantEnded(t, id, store.JobCompleted, "")
	if n := len(h.events(t, id)); n != 2 {
		t.Fatalf("%d events after A's check, want 2", n)
	}
	h.svc.mu.Lock()
	_, still := h.svc.active[id]
	h.svc.mu.Unlock()
	if still {
		t.Fatal("node A still holds the finished job in memory")
	}
	// Before resyncAfter a stale copy that must end the job reads the row
	// first: finish does not append after the stored end either.
	id2 := h.startRunning(t)
	if _, err := b.Report(t.Context(), &croupierv1.ReportJobEventsRequest{AgentId: "a", JobId: id2, Instance: "a/1",
		Events: []*croupierv1.JobEvent{ev(1, croupierv1.EventType_START, "started"), ev(2, croupierv1.EventType_DONE, "done")}}); err != nil {
		t.Fatal(err)
	}
	h.svc.InstancesDeparted("a", map[string]string{"1": ""})
	h.wantEnded(t, id2, store.JobCompleted, "")
}

// TestCancelReportedThroughAnotherNode: node A cancels a running job; the
// game server's CANCELED event arrives through node B (which holds the
// agent's tunnel). A answers canceled, not the stale running it cached.
func TestCancelReportedThroughAnotherNode(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.startRunning(t)
	b := h.peer(t)
	h.caller.onCancel(func(ctx context.Context, agent string, req *agentv1.CancelJobRequest) (*agentv1.CancelJobResponse, error) {
		if _, err := b.Report(ctx, &croupierv1.ReportJobEventsRequest{AgentId: "a", JobId: id, Instance: "a/1",
			Events: []*croupierv1.JobEvent{ev(1, croupierv1.EventType_START, "started"), ev(2, croupierv1.EventType_CANCELED, req.GetReason())}}); err != nil {
			return nil, err
		}
		return &agentv1.CancelJobResponse{Found: true}, nil
	})
	resp, err := h.svc.Cancel(t.Context(), &croupierv1.CancelJobRequest{JobId: id, Reason: "stop"})
	if err != nil || resp.GetStatus() != store.JobCanceled {
		t.Fatalf("Cancel on A = %v, %v; want canceled", resp, err)
	}
	h.wantEnded(t, id, store.JobCanceled, "CANCELED")
}
