package jobs

import (
	"context"
	"strings"
	"testing"
	"time"

	agentv1 "github.com/croupier/croupier/api/croupier/agent/v1"
	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func (h *harness) cancel(t *testing.T, id, reason string) *croupierv1.CancelJobResponse {
	t.Helper()
	resp, err := h.svc.Cancel(t.Context(), &croupierv1.CancelJobRequest{JobId: id, Reason: reason})
	if err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	return resp
}

// TestCancelPending: a job not started yet is cancelled by the server; when
// its StartJob answer arrives later, the instance is told to stop it.
func TestCancelPending(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	release := make(chan struct{})
	h.caller.onStart(func(ctx context.Context, _ string, _ *agentv1.StartJobRequest) (*agentv1.StartJobResponse, error) {
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return &agentv1.StartJobResponse{InstanceId: "1", Incarnation: "inc-1"}, nil
	})
	id := h.start(t, nil)
	waitFor(t, 5*time.Second, "StartJob to be called", func() bool { return len(h.caller.startCalls()) == 1 })

	resp := h.cancel(t, id, "")
	if !resp.GetSuccess() || resp.GetStatus() != store.JobCanceled {
		t.Fatalf("Cancel = %v", resp)
	}
	j := h.wantEnded(t, id, store.JobCanceled, "CANCELED")
	if j.Error != "canceled by operator" {
		t.Fatalf("default reason %q", j.Error)
	}
	close(release)
	waitFor(t, 5*time.Second, "the late-started job to be cancelled on its instance", func() bool { return len(h.caller.cancelCalls()) == 1 })
	c := h.caller.cancelCalls()[0]
	if c.agent != "a" || c.req.GetJobId() != id || c.req.GetInstanceId() != "1" {
		t.Fatalf("CancelJob(%s, %v)", c.agent, c.req)
	}
	h.svc.wg.Wait()
	if j := h.job(t, id); j.Status != store.JobCanceled {
		t.Fatalf("the late StartJob answer moved the job to %q", j.Status)
	}
}

// TestCancelRunning: the game server is asked to cancel; the SDK then
// reports CANCELED with the reason, and Cancel returns the final status.
func TestCancelRunning(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.startRunning(t)
	h.mustReport(t, id, 1, ev(1, croupierv1.EventType_START, "s"))
	reported := make(chan error, 1)
	h.caller.onCancel(func(_ context.Context, _ string, req *agentv1.CancelJobRequest) (*agentv1.CancelJobResponse, error) {
		// What the SDK does: cancel the handler, which ends the job.
		go func() {
			_, err := h.report(req.GetJobId(), ev(2, croupierv1.EventType_CANCELED, req.GetReason()))
			reported <- err
		}()
		return &agentv1.CancelJobResponse{Found: true}, nil
	})
	resp := h.cancel(t, id, "wrong recipients")
	if resp.GetStatus() != store.JobCanceled || !resp.GetSuccess() {
		t.Fatalf("Cancel = %v", resp)
	}
	if err := <-reported; err != nil {
		t.Fatal(err)
	}
	calls := h.caller.cancelCalls()
	if len(calls) != 1 || calls[0].agent != "a" || calls[0].req.GetInstanceId() != "1" || calls[0].req.GetReason() != "wrong recipients" {
		t.Fatalf("CancelJob calls %v", calls)
	}
	j := h.wantEnded(t, id, store.JobCanceled, "CANCELED")
	if j.Error != "wrong recipients" || j.LastSeq != 2 {
		t.Fatalf("job error %q last_seq %d", j.Error, j.LastSeq)
	}
}

// TestCancelUnreachable: when the game server cannot be asked, or no longer
// has the job, the server ends it and says why.
func TestCancelUnreachable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		answer func(context.Context, string, *agentv1.CancelJobRequest) (*agentv1.CancelJobResponse, error)
		why    string
	}{
		{"unreachable", func(context.Context, string, *agentv1.CancelJobRequest) (*agentv1.CancelJobResponse, error) {
			return nil, status.Error(codes.Unavailable, "agent a is not connected")
		}, "could not be reached: agent a is not connected"},
		{"not found", func(context.Context, string, *agentv1.CancelJobRequest) (*agentv1.CancelJobResponse, error) {
			return &agentv1.CancelJobResponse{Found: false}, nil
		}, "no longer runs it"},
	}
	h := newHarness(t) // shared: every case has its own job
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := h.startRunning(t)
			h.mustReport(t, id, 2, ev(1, croupierv1.EventType_START, "s"), progress(2, 0.5))
			h.caller.onCancel(tt.answer)
			if resp := h.cancel(t, id, "stop"); resp.GetStatus() != store.JobCanceled {
				t.Fatalf("Cancel = %v", resp)
			}
			j := h.wantEnded(t, id, store.JobCanceled, "CANCELED")
			if !strings.HasPrefix(j.Error, "stop (") || !strings.Contains(j.Error, tt.why) || j.LastSeq != 3 {
				t.Fatalf("error %q last_seq %d; want the reason and %q", j.Error, j.LastSeq, tt.why)
			}
			// The game server's late events are acknowledged and dropped.
			resp := h.mustReport(t, id, 3, progress(3, 0.9))
			if resp.GetStatus() != store.JobCanceled {
				t.Fatalf("late report status %q", resp.GetStatus())
			}
		})
	}
}

func TestCancelFinishedOrUnknown(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.startRunning(t)
	h.mustReport(t, id, 2, ev(1, croupierv1.EventType_START, "s"), ev(2, croupierv1.EventType_DONE, "d"))
	_, err := h.svc.Cancel(t.Context(), &croupierv1.CancelJobRequest{JobId: id})
	ei := wantStatus(t, err, codes.FailedPrecondition, apierr.CodeJobFinished)
	if ei.GetDetails()["status"] != store.JobCompleted {
		t.Fatalf("details %v", ei.GetDetails())
	}
	_, err = h.svc.Cancel(t.Context(), &croupierv1.CancelJobRequest{JobId: "job_nope"})
	wantStatus(t, err, codes.NotFound, apierr.CodeJobNotFound)
	if n := len(h.caller.cancelCalls()); n != 0 {
		t.Fatalf("CancelJob was called %d times", n)
	}
	if j := h.job(t, id); j.Status != store.JobCompleted {
		t.Fatalf("status %q", j.Status)
	}
}
