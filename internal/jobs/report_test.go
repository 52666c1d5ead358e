package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	agentv1 "github.com/croupier/croupier/api/croupier/agent/v1"
	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/telemetry"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

// TestReportSequence walks one job through its life: events are stored in
// order, re-sent ones are skipped, a gap is refused with the seq to resume
// from, DONE completes the job with its result, and later events are
// acknowledged without being stored.
func TestReportSequence(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.startRunning(t)

	resp := h.mustReport(t, id, 2, ev(1, croupierv1.EventType_START, "started"), progress(2, 0.25))
	if resp.GetStatus() != store.JobRunning {
		t.Fatalf("status %q", resp.GetStatus())
	}
	if j := h.job(t, id); j.Progress != 0.25 || j.LastSeq != 2 {
		t.Fatalf("job progress %v last_seq %d", j.Progress, j.LastSeq)
	}

	// A re-send after a lost acknowledgement, plus one new event.
	h.mustReport(t, id, 3, ev(1, croupierv1.EventType_START, "started"), progress(2, 0.25), progress(3, 0.5))
	// Only re-sent events: nothing new, same ack.
	h.mustReport(t, id, 3, progress(2, 0.25), progress(3, 0.5))
	if evs := h.events(t, id); len(evs) != 3 {
		t.Fatalf("%d events stored after duplicates, want 3", len(evs))
	}

	// A gap.
	_, err := h.report(id, progress(5, 0.9))
	ei := wantStatus(t, err, codes.FailedPrecondition, "EVENT_GAP")
	if ei.GetDetails()["expected_seq"] != "4" {
		t.Fatalf("EVENT_GAP details %v; want expected_seq 4", ei.GetDetails())
	}
	if j := h.job(t, id); j.LastSeq != 3 {
		t.Fatalf("a refused batch changed last_seq to %d", j.LastSeq)
	}

	h.mustReport(t, id, 5, ev(4, croupierv1.EventType_LOG, "sent 3 mails"),
		withData(ev(5, croupierv1.EventType_DONE, "done"), map[string]any{"sent": 3}))
	j := h.wantEnded(t, id, store.JobCompleted, "")
	var result map[string]any
	if err := json.Unmarshal(j.Result, &result); err != nil || result["sent"] != 3.0 || j.Progress != 1 {
		t.Fatalf("result %s progress %v (%v)", j.Result, j.Progress, err)
	}

	// After the end: acknowledged (so the sender stops) and dropped.
	resp = h.mustReport(t, id, 5, ev(6, croupierv1.EventType_LOG, "late"))
	if resp.GetStatus() != store.JobCompleted {
		t.Fatalf("late report status %q", resp.GetStatus())
	}
	if evs := h.events(t, id); len(evs) != 5 {
		t.Fatalf("%d events after a late report, want 5", len(evs))
	}
	got, err := h.svc.Get(t.Context(), id)
	if err != nil || got.GetResult().GetFields()["sent"].GetNumberValue() != 3 || got.GetEndedAt() == 0 {
		t.Fatalf("Get = %v, %v", got, err)
	}
}

func TestReportTerminalEvents(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		end        *croupierv1.JobEvent
		wantStatus string
		wantCode   string
		wantError  string
	}{
		{"error with code", withData(ev(2, croupierv1.EventType_ERROR, "out of stock"), map[string]any{"error_code": "OUT_OF_STOCK"}),
			store.JobFailed, "OUT_OF_STOCK", "out of stock"},
		{"error without code", ev(2, croupierv1.EventType_ERROR, "boom"), store.JobFailed, "FUNCTION_ERROR", "boom"},
		{"canceled", ev(2, croupierv1.EventType_CANCELED, "operator said stop"), store.JobCanceled, "CANCELED", "operator said stop"},
		{"done without data", ev(2, croupierv1.EventType_DONE, "done"), store.JobCompleted, "", ""},
	}
	h := newHarness(t) // shared: every case has its own job
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := h.startRunning(t)
			resp := h.mustReport(t, id, 2, ev(1, croupierv1.EventType_START, "started"), tt.end)
			if resp.GetStatus() != tt.wantStatus {
				t.Fatalf("ack status %q, want %q", resp.GetStatus(), tt.wantStatus)
			}
			j := h.wantEnded(t, id, tt.wantStatus, tt.wantCode)
			if j.Error != tt.wantError {
				t.Fatalf("error message %q, want %q", j.Error, tt.wantError)
			}
		})
	}
}

func TestReportRefusals(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.startRunning(t)

	for _, who := range []struct{ agent, instance string }{{"a", "a/2"}, {"b", "b/1"}, {"b", "a/1"}, {"a", ""}} {
		_, err := h.reportAs(who.agent, who.instance, id, ev(1, croupierv1.EventType_START, "started"))
		ei := wantStatus(t, err, codes.PermissionDenied, apierr.CodeScopeMismatch)
		if ei.GetDetails()["job_id"] != id {
			t.Errorf("%v: details %v", who, ei.GetDetails())
		}
	}
	_, err := h.report("job_nope", ev(1, croupierv1.EventType_START, "started"))
	wantStatus(t, err, codes.NotFound, apierr.CodeJobNotFound)

	// Events after the terminal event in one batch are malformed; nothing
	// of the batch is stored.
	_, err = h.report(id, ev(1, croupierv1.EventType_START, "s"), ev(2, croupierv1.EventType_DONE, "d"), ev(3, croupierv1.EventType_LOG, "x"))
	wantStatus(t, err, codes.InvalidArgument, apierr.CodeInvalidArgument)
	// So are events over the limits, and reports of too many events:
	// checked before anything is stored.
	big, _ := structpb.NewStruct(map[string]any{"x": strings.Repeat("x", MaxEventData)})
	for name, evs := range map[string][]*croupierv1.JobEvent{
		"long message": {ev(1, croupierv1.EventType_START, "s"), ev(2, croupierv1.EventType_LOG, strings.Repeat("m", MaxEventMessage+1))},
		"large data":   {ev(1, croupierv1.EventType_START, "s"), {Seq: 2, Type: croupierv1.EventType_LOG, Data: big}},
		"many events":  make([]*croupierv1.JobEvent, MaxEventsInReport+1),
	} {
		_, err = h.report(id, evs...)
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("%s: %v, want INVALID_ARGUMENT", name, err)
		}
	}
	if evs := h.events(t, id); len(evs) != 0 {
		t.Fatalf("a refused batch stored %d events", len(evs))
	}
	if j := h.job(t, id); j.Status != store.JobRunning {
		t.Fatalf("status %q after refusals", j.Status)
	}
}

// TestReportPendingJobStarts: a START can arrive before the dispatch has
// recorded the job as running; it moves the job to running itself, and the
// dispatch still records the incarnation when it returns.
func TestReportPendingJobStarts(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	release := make(chan struct{})
	h.caller.onStart(func(ctx context.Context, _ string, req *agentv1.StartJobRequest) (*agentv1.StartJobResponse, error) {
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return &agentv1.StartJobResponse{InstanceId: "1", Incarnation: "inc-7"}, nil
	})
	id := h.start(t, nil)
	waitFor(t, 5*time.Second, "StartJob to be called", func() bool { return len(h.caller.startCalls()) == 1 })
	h.mustReport(t, id, 1, ev(1, croupierv1.EventType_START, "started"))
	if j := h.job(t, id); j.Status != store.JobRunning || j.StartedAt.IsZero() {
		t.Fatalf("after START: status %q started %v", j.Status, j.StartedAt)
	}
	close(release)
	waitFor(t, 5*time.Second, "the incarnation to be recorded", func() bool { return h.job(t, id).Incarnation == "inc-7" })
	if j := h.job(t, id); j.Status != store.JobRunning {
		t.Fatalf("status %q after the dispatch returned", j.Status)
	}
}

// TestReportAfterRestart: a new service on the same store (a server restart)
// reloads unfinished jobs and continues their logs where they were.
func TestReportAfterRestart(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.startRunning(t)
	h.mustReport(t, id, 2, ev(1, croupierv1.EventType_START, "started"), progress(2, 0.5))
	h.svc.wg.Wait()

	restarted := New(h.svc.cfg, h.st, h.prep, h.caller, h.reg)
	if err := restarted.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	restarted.mu.Lock()
	_, loaded := restarted.active[id]
	restarted.mu.Unlock()
	if !loaded {
		t.Fatal("Open did not load the running job")
	}
	h.svc = restarted
	_, err := h.report(id, progress(4, 0.9))
	if ei := wantStatus(t, err, codes.FailedPrecondition, "EVENT_GAP"); ei.GetDetails()["expected_seq"] != "3" {
		t.Fatalf("after restart expected_seq %v, want 3", ei.GetDetails())
	}
	h.mustReport(t, id, 4, progress(2, 0.5), progress(3, 0.75), ev(4, croupierv1.EventType_DONE, "done"))
	h.wantEnded(t, id, store.JobCompleted, "")
}

// TestReportEventBudget: once a job's stored events would weigh more than
// Config.MaxEventBytes, an event that does not fit is acknowledged but not
// stored (the job's progress still follows it), one that fits still is,
// the budget is read back from the store after a restart, and the terminal
// event is stored whatever the budget.
func TestReportEventBudget(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	h := newHarness(t, func(c *Config) { c.MaxEventBytes = 1000; c.Metrics = telemetry.NewMetrics(reg) })
	id := h.startRunning(t)
	cost := func(e *croupierv1.JobEvent) int64 {
		se, err := toStoreEvent(e)
		if err != nil {
			t.Fatal(err)
		}
		return store.EventCost(se)
	}
	start, big, over, p := ev(1, croupierv1.EventType_START, "s"), ev(2, croupierv1.EventType_LOG, strings.Repeat("a", 500)),
		ev(3, croupierv1.EventType_LOG, strings.Repeat("b", 300)), progress(4, 0.5)
	if cost(start)+cost(big)+cost(over) <= 1000 || cost(start)+cost(big)+cost(p) > 1000 {
		t.Fatal("the events do not exercise the budget; fix the test")
	}
	h.mustReport(t, id, 4, start, big, over, p)
	j := h.job(t, id)
	if j.LastSeq != 4 || j.Progress != 0.5 || j.EventBytes != cost(start)+cost(big)+cost(p) {
		t.Fatalf("job last_seq %d progress %v event_bytes %d; want 4, 0.5, %d", j.LastSeq, j.Progress, j.EventBytes, cost(start)+cost(big)+cost(p))
	}
	// A report whose every event is dropped still moves the job on.
	h.mustReport(t, id, 5, progress(5, 0.75))
	if j := h.job(t, id); j.LastSeq != 5 || j.Progress != 0.75 {
		t.Fatalf("after a report of dropped events: last_seq %d progress %v; want 5, 0.75", j.LastSeq, j.Progress)
	}

	h.restart(t)
	h.mustReport(t, id, 7, ev(6, croupierv1.EventType_LOG, strings.Repeat("c", 300)),
		withData(ev(7, croupierv1.EventType_DONE, strings.Repeat("d", 300)), map[string]any{"sent": 1}))
	h.wantEnded(t, id, store.JobCompleted, "")
	var seqs []int64
	for _, e := range h.events(t, id) {
		seqs = append(seqs, e.Seq)
	}
	if fmt.Sprint(seqs) != "[1 2 4 7]" {
		t.Fatalf("stored events %v, want [1 2 4 7]: what fits, and the terminal event", seqs)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader("# HELP croupier_job_events_dropped_total Job events acknowledged but not stored: their job was over its event budget (job_max_event_bytes).\n"+
		"# TYPE croupier_job_events_dropped_total counter\ncroupier_job_events_dropped_total 3\n"), "croupier_job_events_dropped_total"); err != nil {
		t.Error(err)
	}
}
