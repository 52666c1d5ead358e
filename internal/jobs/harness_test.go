package jobs

// These tests live in package jobs (not jobs_test) so they can drive the
// service's clock (Service.now) and its periodic check directly; everything
// else goes through the exported methods.

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	agentv1 "github.com/croupier/croupier/api/croupier/agent/v1"
	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/invoke"
	"github.com/croupier/croupier/internal/registry"
	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/store/storetest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

const (
	game = "demo"
	env  = "dev"
	fn   = "mail.broadcast"
)

// fakeClock is the service's clock; tests move it forward.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakePreparer routes every call to target (invoke.Service is tested on
// its own; here only what jobs does with a prepared call matters).
type fakePreparer struct {
	mu     sync.Mutex
	target registry.InstanceRef
	err    error
	calls  int
}

func (p *fakePreparer) Prepare(_ context.Context, g, e, f string, payload *structpb.Struct, opts *croupierv1.InvokeOptions) (*invoke.Call, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.err != nil {
		return nil, p.err
	}
	if opts == nil {
		opts = &croupierv1.InvokeOptions{}
	}
	if payload == nil {
		payload = &structpb.Struct{Fields: map[string]*structpb.Value{}}
	}
	return &invoke.Call{Game: g, Env: e, Function: f, Payload: payload, Config: map[string]string{"batch": "10"},
		Targets: []registry.InstanceRef{p.target}, Timeout: 30 * time.Second, Options: opts}, nil
}

func (p *fakePreparer) setTarget(agent, instance string) {
	p.mu.Lock()
	p.target = registry.InstanceRef{Agent: agent, Instance: instance}
	p.mu.Unlock()
}

type startRec struct {
	agent string
	req   *agentv1.StartJobRequest
}

type cancelRec struct {
	agent string
	req   *agentv1.CancelJobRequest
}

// fakeCaller stands in for the tunnel to the agents.
type fakeCaller struct {
	mu       sync.Mutex
	starts   []startRec
	cancels  []cancelRec
	startFn  func(ctx context.Context, agent string, req *agentv1.StartJobRequest) (*agentv1.StartJobResponse, error)
	cancelFn func(ctx context.Context, agent string, req *agentv1.CancelJobRequest) (*agentv1.CancelJobResponse, error)
}

func (f *fakeCaller) StartJob(ctx context.Context, agent string, req *agentv1.StartJobRequest) (*agentv1.StartJobResponse, error) {
	f.mu.Lock()
	f.starts = append(f.starts, startRec{agent, req})
	fn := f.startFn
	f.mu.Unlock()
	if fn != nil {
		return fn(ctx, agent, req)
	}
	return &agentv1.StartJobResponse{InstanceId: req.GetInvocation().GetInstanceId(), Incarnation: "inc-1"}, nil
}

func (f *fakeCaller) CancelJob(ctx context.Context, agent string, req *agentv1.CancelJobRequest) (*agentv1.CancelJobResponse, error) {
	f.mu.Lock()
	f.cancels = append(f.cancels, cancelRec{agent, req})
	fn := f.cancelFn
	f.mu.Unlock()
	if fn != nil {
		return fn(ctx, agent, req)
	}
	return &agentv1.CancelJobResponse{Found: false}, nil
}

func (f *fakeCaller) onStart(fn func(ctx context.Context, agent string, req *agentv1.StartJobRequest) (*agentv1.StartJobResponse, error)) {
	f.mu.Lock()
	f.startFn = fn
	f.mu.Unlock()
}

func (f *fakeCaller) onCancel(fn func(ctx context.Context, agent string, req *agentv1.CancelJobRequest) (*agentv1.CancelJobResponse, error)) {
	f.mu.Lock()
	f.cancelFn = fn
	f.mu.Unlock()
}

func (f *fakeCaller) startCalls() []startRec {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]startRec(nil), f.starts...)
}

func (f *fakeCaller) cancelCalls() []cancelRec {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]cancelRec(nil), f.cancels...)
}

type harness struct {
	svc    *Service
	st     *store.Store
	reg    *registry.Registry
	prep   *fakePreparer
	caller *fakeCaller
	clock  *fakeClock
	// storeShift moves the store's clock (idempotency claim times).
	storeShift *atomic.Int64
}

func newHarness(t *testing.T, cfgs ...func(*Config)) *harness {
	t.Helper()
	shift := new(atomic.Int64)
	st := storetest.SQLite(t, storetest.WithClock(func() time.Time { return time.Now().Add(time.Duration(shift.Load())) }))
	h := &harness{st: st, reg: registry.New(registry.Options{}), prep: &fakePreparer{}, caller: &fakeCaller{},
		clock: &fakeClock{t: time.Now()}, storeShift: shift}
	h.prep.setTarget("a", "1")
	h.setInstances(t, "a", map[string]string{"1": "inc-1", "2": "inc-1"})
	cfg := Config{CheckInterval: time.Hour, OrphanGrace: time.Minute, IdempotencyWindow: time.Hour,
		Retention: 24 * time.Hour, KeepJobs: 10, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, c := range cfgs {
		c(&cfg)
	}
	h.svc = New(cfg, st, h.prep, h.caller, h.reg)
	h.svc.now = h.clock.Now
	// Dispatches run until the service's context ends: t.Context ends before
	// the cleanups run, and this cleanup (registered after the store's, so
	// run before it) waits for them.
	if err := h.svc.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.svc.wg.Wait)
	return h
}

// setInstances registers (or replaces) agent with the given instance ->
// incarnation map, every instance serving fn.
func (h *harness) setInstances(t *testing.T, agent string, instances map[string]string) {
	t.Helper()
	a := registry.Agent{ID: agent, GameID: game, Env: env, Descriptors: []*croupierv1.FunctionDescriptor{{Id: fn}}}
	for id, inc := range instances {
		a.Instances = append(a.Instances, registry.Instance{ID: id, Functions: []string{fn}, Incarnation: inc})
	}
	if err := h.reg.Upsert(a); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) start(t *testing.T, opts *croupierv1.InvokeOptions) string {
	t.Helper()
	resp, err := h.svc.Start(t.Context(), &croupierv1.InvokeJobRequest{GameId: game, Env: env, FunctionId: fn,
		Payload: mustStruct(map[string]any{"subject": "hi"}), Options: opts}, "op:alice")
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if !resp.GetSuccess() || resp.GetJobId() == "" || resp.GetStatus() != store.JobPending {
		t.Fatalf("Start = %v", resp)
	}
	return resp.GetJobId()
}

// startRunning starts a job on a/1 and waits until its dispatch recorded it
// as running.
func (h *harness) startRunning(t *testing.T) string {
	t.Helper()
	id := h.start(t, nil)
	h.waitStatus(t, id, store.JobRunning)
	return id
}

func (h *harness) job(t *testing.T, id string) *store.Job {
	t.Helper()
	j, err := h.st.Jobs().Get(context.Background(), id)
	if err != nil {
		t.Fatalf("get job %s: %v", id, err)
	}
	return j
}

func (h *harness) events(t *testing.T, id string) []store.Event {
	t.Helper()
	evs, err := h.st.Jobs().Events(context.Background(), id, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func (h *harness) waitStatus(t *testing.T, id, want string) *store.Job {
	t.Helper()
	var j *store.Job
	waitFor(t, 5*time.Second, "job "+id+" to be "+want, func() bool {
		j = h.job(t, id)
		return j.Status == want
	})
	return j
}

// report sends events for job id as agent a, instance 1.
func (h *harness) report(id string, evs ...*croupierv1.JobEvent) (*croupierv1.ReportJobEventsResponse, error) {
	return h.reportAs("a", "a/1", id, evs...)
}

func (h *harness) reportAs(agent, instance, id string, evs ...*croupierv1.JobEvent) (*croupierv1.ReportJobEventsResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return h.svc.Report(ctx, &croupierv1.ReportJobEventsRequest{AgentId: agent, JobId: id, Instance: instance, Events: evs})
}

func (h *harness) mustReport(t *testing.T, id string, wantAck int64, evs ...*croupierv1.JobEvent) *croupierv1.ReportJobEventsResponse {
	t.Helper()
	resp, err := h.report(id, evs...)
	if err != nil {
		t.Fatalf("Report: %v", err)
	}
	if resp.GetAckedSeq() != wantAck {
		t.Fatalf("Report acked %d, want %d", resp.GetAckedSeq(), wantAck)
	}
	return resp
}

func ev(seq int64, typ croupierv1.EventType, msg string) *croupierv1.JobEvent {
	return &croupierv1.JobEvent{Seq: seq, Type: typ, Message: msg, Timestamp: time.Now().UnixMilli()}
}

func progress(seq int64, p float64) *croupierv1.JobEvent {
	e := ev(seq, croupierv1.EventType_PROGRESS, "working")
	e.Progress = p
	return e
}

func withData(e *croupierv1.JobEvent, m map[string]any) *croupierv1.JobEvent {
	e.Data = mustStruct(m)
	return e
}

func mustStruct(m map[string]any) *structpb.Struct {
	s, err := structpb.NewStruct(m)
	if err != nil {
		panic(err)
	}
	return s
}

func wantStatus(t *testing.T, err error, c codes.Code, info string) *croupierv1.ErrorInfo {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error; want %s %s", c, info)
	}
	if got := status.Code(err); got != c {
		t.Fatalf("status %s (%v); want %s", got, err, c)
	}
	ei := apierr.Info(err)
	if ei.GetCode() != info {
		t.Fatalf("ErrorInfo code %q (%v); want %q", ei.GetCode(), err, info)
	}
	return ei
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// lastEvent returns the job's last stored event.
func (h *harness) lastEvent(t *testing.T, id string) store.Event {
	t.Helper()
	evs := h.events(t, id)
	if len(evs) == 0 {
		t.Fatalf("job %s has no events", id)
	}
	return evs[len(evs)-1]
}

// wantEnded checks a job ended with status and error code, and that its
// last event is the matching terminal event carrying the code.
func (h *harness) wantEnded(t *testing.T, id, status, code string) *store.Job {
	t.Helper()
	j := h.job(t, id)
	if j.Status != status || j.ErrorCode != code || j.EndedAt.IsZero() {
		t.Fatalf("job = status %q code %q ended %v; want %q %q ended", j.Status, j.ErrorCode, j.EndedAt, status, code)
	}
	last := h.lastEvent(t, id)
	if last.Seq != j.LastSeq {
		t.Fatalf("last event seq %d, job last_seq %d", last.Seq, j.LastSeq)
	}
	wantType := map[string]croupierv1.EventType{store.JobFailed: croupierv1.EventType_ERROR, store.JobCanceled: croupierv1.EventType_CANCELED,
		store.JobCompleted: croupierv1.EventType_DONE}[status]
	if croupierv1.EventType(last.Type) != wantType {
		t.Fatalf("last event type %s, want %s", croupierv1.EventType(last.Type), wantType)
	}
	return j
}
