package sdk_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	agentv1 "github.com/croupier/croupier/api/croupier/agent/v1"
	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/tunnel"
	"github.com/croupier/croupier/sdk"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

// fakeAgent is the agent's side of the SDK connection: a real tunnel server
// on 127.0.0.1:0 (so calls cross a real connection: the conn transport, or
// a gRPC stream for an agent started with stream) and a LocalAgentService
// that stores reported job events the way the server does — skipping
// duplicates and acknowledging the highest stored seq.
type fakeAgent struct {
	agentv1.UnimplementedLocalAgentServiceServer
	tun  *tunnel.Server
	addr string

	mu         sync.Mutex
	registered []*agentv1.RegisterInstanceRequest
	events     map[string][]*croupierv1.JobEvent
	status     map[string]string
	// failReports makes the next n ReportJobEvents calls fail UNAVAILABLE.
	failReports int
	// endJob makes the server answer every report of that job as ended
	// with this status (a job the server failed or cancelled on its own).
	endJob map[string]string
	// reported is signalled after every stored batch.
	reported chan struct{}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func startFakeAgent(t *testing.T) *fakeAgent { return startFakeAgentOn(t, false) }

// startFakeAgentOn starts a fake agent whose tunnel takes only the conn
// transport, or with stream only the gRPC stream transport, so a client on
// the other one cannot connect.
func startFakeAgentOn(t *testing.T, stream bool) *fakeAgent {
	t.Helper()
	log := quiet()
	a := &fakeAgent{tun: tunnel.NewServer(tunnel.ServerOptions{Logger: log}), events: map[string][]*croupierv1.JobEvent{},
		status: map[string]string{}, endJob: map[string]string{}, reported: make(chan struct{}, 1)}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a.addr = lis.Addr().String()
	gs := grpc.NewServer()
	agentv1.RegisterLocalAgentServiceServer(gs, a)
	served := make(chan struct{}, 2)
	if stream {
		a.tun.RegisterGRPC(gs)
		served <- struct{}{}
	} else {
		mux := tunnel.NewConnMux(lis, a.tun)
		lis = mux.Other()
		go func() {
			defer func() { served <- struct{}{} }()
			_ = mux.Serve(context.Background())
		}()
	}
	go func() {
		defer func() { served <- struct{}{} }()
		_ = gs.Serve(lis)
	}()
	t.Cleanup(func() {
		a.tun.Close()
		gs.Stop()
		<-served
		<-served
	})
	return a
}

func (a *fakeAgent) RegisterInstance(_ context.Context, req *agentv1.RegisterInstanceRequest) (*agentv1.RegisterInstanceResponse, error) {
	a.mu.Lock()
	a.registered = append(a.registered, req)
	a.mu.Unlock()
	return &agentv1.RegisterInstanceResponse{AgentId: "edge-1", GameId: "demo", Env: "dev"}, nil
}

func (a *fakeAgent) ReportJobEvents(_ context.Context, req *agentv1.ReportJobEventsRequest) (*agentv1.ReportJobEventsResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.failReports > 0 {
		a.failReports--
		return nil, status.Error(codes.Unavailable, "agent is not connected to the server")
	}
	id := req.GetJobId()
	if st, ok := a.endJob[id]; ok {
		return &agentv1.ReportJobEventsResponse{AckedSeq: int64(len(a.events[id])), Status: st}, nil
	}
	for _, e := range req.GetEvents() {
		if e.GetSeq() == int64(len(a.events[id]))+1 {
			a.events[id] = append(a.events[id], e)
			switch e.GetType() {
			case croupierv1.EventType_START:
				a.status[id] = "running"
			case croupierv1.EventType_DONE:
				a.status[id] = "completed"
			case croupierv1.EventType_ERROR:
				a.status[id] = "failed"
			case croupierv1.EventType_CANCELED:
				a.status[id] = "canceled"
			}
		}
	}
	select {
	case a.reported <- struct{}{}:
	default:
	}
	return &agentv1.ReportJobEventsResponse{AckedSeq: int64(len(a.events[id])), Status: a.status[id]}, nil
}

func (a *fakeAgent) jobEvents(id string) []*croupierv1.JobEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]*croupierv1.JobEvent(nil), a.events[id]...)
}

func (a *fakeAgent) registrations() []*agentv1.RegisterInstanceRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]*agentv1.RegisterInstanceRequest(nil), a.registered...)
}

// serve runs c against the agent until the test ends, and waits until the
// instance is connected and registered.
func serve(t *testing.T, a *fakeAgent, c *sdk.Client) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve = %v after its context ended, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after its context ended")
		}
	})
	waitFor(t, 10*time.Second, "the instance to connect and register", func() bool {
		return a.tun.Connected(c.InstanceID()) && len(a.registrations()) > 0
	})
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

func call(t *testing.T, a *fakeAgent, instance string, req *agentv1.InvokeRequest) *agentv1.InvokeResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := tunnel.Call[*agentv1.InvokeResponse](ctx, a.tun, instance, req)
	if err != nil {
		t.Fatalf("invoke %s: %v", req.GetFunctionId(), err)
	}
	return resp
}

func mustStruct(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestServeInvocations runs handlers through a real tunnel and checks every
// kind of outcome, and what the handler sees of the invocation.
func TestServeInvocations(t *testing.T) {
	t.Parallel()
	a := startFakeAgent(t)
	c := sdk.New(sdk.Options{AgentAddr: a.addr, InstanceID: "gs-1", Labels: map[string]string{"shard": "7"}, Logger: quiet()})
	var (
		mu   sync.Mutex
		seen *sdk.Invocation
		dl   time.Time
	)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.Register(&croupierv1.FunctionDescriptor{Id: "echo"}, func(ctx context.Context, inv *sdk.Invocation) (*structpb.Struct, error) {
		mu.Lock()
		seen = inv
		dl, _ = ctx.Deadline()
		mu.Unlock()
		return inv.Payload, nil
	}))
	must(c.Register(&croupierv1.FunctionDescriptor{Id: "coded"}, func(context.Context, *sdk.Invocation) (*structpb.Struct, error) {
		return nil, sdk.Errorf("PLAYER_NOT_FOUND", "no player p9")
	}))
	must(c.Register(&croupierv1.FunctionDescriptor{Id: "plain"}, func(context.Context, *sdk.Invocation) (*structpb.Struct, error) {
		return nil, errors.New("disk full")
	}))
	must(c.Register(&croupierv1.FunctionDescriptor{Id: "panics"}, func(context.Context, *sdk.Invocation) (*structpb.Struct, error) {
		panic("nil map")
	}))
	must(c.Register(&croupierv1.FunctionDescriptor{Id: "slow"}, func(ctx context.Context, _ *sdk.Invocation) (*structpb.Struct, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}))
	serve(t, a, c)

	reg := a.registrations()[0]
	if reg.GetInstanceId() != "gs-1" || reg.GetLabels()["shard"] != "7" || reg.GetIncarnation() == "" || len(reg.GetFunctions()) != 5 ||
		reg.GetFunctions()[0].GetId() != "echo" || reg.GetFunctions()[4].GetId() != "slow" {
		t.Fatalf("RegisterInstance(%v)", reg)
	}

	start := time.Now()
	resp := call(t, a, "gs-1", &agentv1.InvokeRequest{InvocationId: "inv-1", GameId: "demo", Env: "dev", FunctionId: "echo",
		Payload: mustStruct(t, map[string]any{"x": 1}), IdempotencyKey: "k", Actor: "op:alice", Config: map[string]string{"c": "1"}})
	if !resp.GetSuccess() || resp.GetResult().GetFields()["x"].GetNumberValue() != 1 {
		t.Fatalf("echo = %v", resp)
	}
	mu.Lock()
	inv, deadline := seen, dl
	mu.Unlock()
	if inv.ID != "inv-1" || inv.GameID != "demo" || inv.Env != "dev" || inv.FunctionID != "echo" || inv.IdempotencyKey != "k" ||
		inv.Actor != "op:alice" || inv.Config["c"] != "1" {
		t.Fatalf("handler saw %+v", inv)
	}
	if deadline.IsZero() || deadline.Before(start) || deadline.After(start.Add(11*time.Second)) {
		t.Fatalf("handler deadline %v; want the caller's (about 10s from %v)", deadline, start)
	}

	for fn, want := range map[string]struct{ code, msg string }{
		"coded":   {"PLAYER_NOT_FOUND", "no player p9"},
		"plain":   {"FUNCTION_ERROR", "disk full"},
		"panics":  {"PANIC", "handler panicked: nil map"},
		"missing": {"UNKNOWN_FUNCTION", "this instance does not serve missing"},
	} {
		resp := call(t, a, "gs-1", &agentv1.InvokeRequest{FunctionId: fn})
		if resp.GetSuccess() || resp.GetErrorCode() != want.code || resp.GetError() != want.msg {
			t.Errorf("%s = %v; want error %s %q", fn, resp, want.code, want.msg)
		}
	}
	// A nil payload reaches the handler as an empty object.
	if resp := call(t, a, "gs-1", &agentv1.InvokeRequest{FunctionId: "echo"}); !resp.GetSuccess() {
		t.Fatalf("echo without payload = %v", resp)
	}

	// The caller's deadline ends the handler's context; the caller gets
	// DEADLINE_EXCEEDED, not a function error.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := tunnel.Call[*agentv1.InvokeResponse](ctx, a.tun, "gs-1", &agentv1.InvokeRequest{FunctionId: "slow"})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("slow = %v, want DEADLINE_EXCEEDED", err)
	}
}

func startJob(t *testing.T, a *fakeAgent, fn, id string) *agentv1.StartJobResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := tunnel.Call[*agentv1.StartJobResponse](ctx, a.tun, "gs-1", &agentv1.StartJobRequest{JobId: id,
		Invocation: &agentv1.InvokeRequest{InvocationId: id, FunctionId: fn, InstanceId: "gs-1",
			Payload: mustStruct(t, map[string]any{"n": 3})}})
	if err != nil {
		t.Fatalf("StartJob %s: %v", fn, err)
	}
	return resp
}

// waitEnded waits until the job's terminal event has been stored.
func waitEnded(t *testing.T, a *fakeAgent, id string) []*croupierv1.JobEvent {
	t.Helper()
	var evs []*croupierv1.JobEvent
	waitFor(t, 10*time.Second, "job "+id+" to end", func() bool {
		evs = a.jobEvents(id)
		if len(evs) == 0 {
			return false
		}
		switch evs[len(evs)-1].GetType() {
		case croupierv1.EventType_DONE, croupierv1.EventType_ERROR, croupierv1.EventType_CANCELED:
			return true
		}
		return false
	})
	return evs
}

func eventTypes(evs []*croupierv1.JobEvent) []croupierv1.EventType {
	out := make([]croupierv1.EventType, len(evs))
	for i, e := range evs {
		out[i] = e.GetType()
	}
	return out
}

func wantTypes(t *testing.T, evs []*croupierv1.JobEvent, want ...croupierv1.EventType) {
	t.Helper()
	got := eventTypes(evs)
	if len(got) != len(want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] || evs[i].GetSeq() != int64(i+1) {
			t.Fatalf("events %v (seq %d at %d), want %v", got, evs[i].GetSeq(), i, want)
		}
	}
}

// TestServeJobs runs jobs end to end on the SDK side: events in order with
// seqs from 1, results and errors, cancellation, retries while the agent
// cannot deliver, and a job the server ended on its own.
func TestServeJobs(t *testing.T) {
	t.Parallel()
	a := startFakeAgent(t)
	c := sdk.New(sdk.Options{AgentAddr: a.addr, InstanceID: "gs-1", Logger: quiet()})
	handlerCtx := make(chan error, 1)
	if err := c.RegisterJob(&croupierv1.FunctionDescriptor{Id: "mail.broadcast", Semantics: &croupierv1.Semantics{LongRunning: true}},
		func(ctx context.Context, job *sdk.Job) (*structpb.Struct, error) {
			var p struct {
				N int `json:"n"`
			}
			if err := job.Decode(&p); err != nil {
				return nil, err
			}
			for i := range p.N {
				if err := job.Progress(float64(i+1)/float64(p.N), "sent"); err != nil {
					return nil, err
				}
			}
			if err := job.Logf("sent %d mails", p.N); err != nil {
				return nil, err
			}
			return sdk.ToStruct(map[string]any{"sent": p.N, "job": job.JobID})
		}); err != nil {
		t.Fatal(err)
	}
	if err := c.RegisterJob(&croupierv1.FunctionDescriptor{Id: "wait.cancel"}, func(ctx context.Context, job *sdk.Job) (*structpb.Struct, error) {
		<-ctx.Done()
		handlerCtx <- context.Cause(ctx)
		return nil, ctx.Err()
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.RegisterJob(&croupierv1.FunctionDescriptor{Id: "fails"}, func(context.Context, *sdk.Job) (*structpb.Struct, error) {
		return nil, sdk.Errorf("OUT_OF_STOCK", "no swords left")
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.Register(&croupierv1.FunctionDescriptor{Id: "plain"}, func(context.Context, *sdk.Invocation) (*structpb.Struct, error) {
		return mustStruct(t, map[string]any{"ok": true}), nil
	}); err != nil {
		t.Fatal(err)
	}
	serve(t, a, c)
	incarnation := a.registrations()[0].GetIncarnation()

	t.Run("completes", func(t *testing.T) {
		resp := startJob(t, a, "mail.broadcast", "job_done")
		if resp.GetInstanceId() != "gs-1" || resp.GetIncarnation() != incarnation {
			t.Fatalf("StartJob = %v; want instance gs-1, incarnation %s", resp, incarnation)
		}
		// Starting the same job again (a retried dispatch) does not run it twice.
		startJob(t, a, "mail.broadcast", "job_done")
		evs := waitEnded(t, a, "job_done")
		P, L := croupierv1.EventType_PROGRESS, croupierv1.EventType_LOG
		wantTypes(t, evs, croupierv1.EventType_START, P, P, P, L, croupierv1.EventType_DONE)
		if evs[3].GetProgress() != 1 || evs[4].GetMessage() != "sent 3 mails" {
			t.Fatalf("events %v", evs)
		}
		if d := evs[5].GetData().GetFields(); d["sent"].GetNumberValue() != 3 || d["job"].GetStringValue() != "job_done" {
			t.Fatalf("DONE data %v", d)
		}
	})

	t.Run("fails with a code", func(t *testing.T) {
		startJob(t, a, "fails", "job_err")
		evs := waitEnded(t, a, "job_err")
		wantTypes(t, evs, croupierv1.EventType_START, croupierv1.EventType_ERROR)
		if evs[1].GetMessage() != "no swords left" || evs[1].GetData().GetFields()["error_code"].GetStringValue() != "OUT_OF_STOCK" {
			t.Fatalf("ERROR event %v", evs[1])
		}
	})

	t.Run("plain function as a job", func(t *testing.T) {
		startJob(t, a, "plain", "job_plain")
		evs := waitEnded(t, a, "job_plain")
		wantTypes(t, evs, croupierv1.EventType_START, croupierv1.EventType_DONE)
		if !evs[1].GetData().GetFields()["ok"].GetBoolValue() {
			t.Fatalf("DONE data %v", evs[1].GetData())
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		startJob(t, a, "wait.cancel", "job_cancel")
		waitFor(t, 10*time.Second, "START to be stored", func() bool { return len(a.jobEvents("job_cancel")) == 1 })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := tunnel.Call[*agentv1.CancelJobResponse](ctx, a.tun, "gs-1", &agentv1.CancelJobRequest{JobId: "job_cancel", Reason: "wrong list", InstanceId: "gs-1"})
		if err != nil || !resp.GetFound() {
			t.Fatalf("CancelJob = %v, %v", resp, err)
		}
		if cause := <-handlerCtx; cause == nil || cause.Error() != "wrong list" {
			t.Fatalf("handler context cause %v, want the reason", cause)
		}
		evs := waitEnded(t, a, "job_cancel")
		wantTypes(t, evs, croupierv1.EventType_START, croupierv1.EventType_CANCELED)
		if evs[1].GetMessage() != "wrong list" {
			t.Fatalf("CANCELED message %q", evs[1].GetMessage())
		}
		// The job is gone from the instance once delivered.
		waitFor(t, 10*time.Second, "the finished job to be forgotten", func() bool {
			resp, err := tunnel.Call[*agentv1.CancelJobResponse](ctx, a.tun, "gs-1", &agentv1.CancelJobRequest{JobId: "job_cancel"})
			return err == nil && !resp.GetFound()
		})
	})

	t.Run("delivery retried", func(t *testing.T) {
		a.mu.Lock()
		a.failReports = 3
		a.mu.Unlock()
		startJob(t, a, "mail.broadcast", "job_retry")
		evs := waitEnded(t, a, "job_retry")
		if len(evs) != 6 {
			t.Fatalf("after retries %d events, want 6: %v", len(evs), eventTypes(evs))
		}
	})

	t.Run("ended by the server", func(t *testing.T) {
		a.mu.Lock()
		a.endJob["job_lost"] = "failed"
		a.mu.Unlock()
		startJob(t, a, "wait.cancel", "job_lost")
		select {
		case cause := <-handlerCtx:
			if cause == nil {
				t.Fatal("handler context ended without a cause")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the handler of a job the server ended was not cancelled")
		}
	})

	t.Run("unknown function", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := tunnel.Call[*agentv1.StartJobResponse](ctx, a.tun, "gs-1", &agentv1.StartJobRequest{JobId: "job_x",
			Invocation: &agentv1.InvokeRequest{FunctionId: "nope"}})
		if status.Code(err) != codes.NotFound {
			t.Fatalf("StartJob(unknown) = %v, want NOT_FOUND", err)
		}
		resp, err := tunnel.Call[*agentv1.CancelJobResponse](ctx, a.tun, "gs-1", &agentv1.CancelJobRequest{JobId: "job_never"})
		if err != nil || resp.GetFound() {
			t.Fatalf("CancelJob(unknown) = %v, %v", resp, err)
		}
	})

	t.Run("job handler called synchronously", func(t *testing.T) {
		resp := call(t, a, "gs-1", &agentv1.InvokeRequest{InvocationId: "inv-sync", FunctionId: "mail.broadcast",
			Payload: mustStruct(t, map[string]any{"n": 2})})
		if !resp.GetSuccess() || resp.GetResult().GetFields()["sent"].GetNumberValue() != 2 {
			t.Fatalf("sync call of a job handler = %v", resp)
		}
		if evs := a.jobEvents("inv-sync"); len(evs) != 0 {
			t.Fatalf("a synchronous call reported %d job events", len(evs))
		}
	})
}

// TestServeTransports: by default the SDK reaches the agent's tunnel over
// the conn transport and, with StreamTransport, over a gRPC stream; each
// fake agent takes only one of them, so a client on the wrong one would
// never connect.
func TestServeTransports(t *testing.T) {
	t.Parallel()
	for _, stream := range []bool{false, true} {
		a := startFakeAgentOn(t, stream)
		c := sdk.New(sdk.Options{AgentAddr: a.addr, InstanceID: "gs-1", Logger: quiet(), StreamTransport: stream})
		if err := c.Register(&croupierv1.FunctionDescriptor{Id: "echo"}, func(_ context.Context, inv *sdk.Invocation) (*structpb.Struct, error) {
			return inv.Payload, nil
		}); err != nil {
			t.Fatal(err)
		}
		serve(t, a, c)
		resp := call(t, a, "gs-1", &agentv1.InvokeRequest{FunctionId: "echo", Payload: mustStruct(t, map[string]any{"x": "y"})})
		if !resp.GetSuccess() || resp.GetResult().GetFields()["x"].GetStringValue() != "y" {
			t.Fatalf("stream=%v: echo = %v", stream, resp)
		}
	}
}
