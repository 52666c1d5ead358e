package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	agentv1 "github.com/croupier/croupier/api/croupier/agent/v1"
	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/config"
	"github.com/croupier/croupier/internal/schema"
	"github.com/croupier/croupier/internal/tlsconf"
	"github.com/croupier/croupier/internal/tunnel"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

// fakeControl stands in for the server's ControlService.
type fakeControl struct {
	mu          sync.Mutex
	registers   []*croupierv1.RegisterAgentRequest
	updates     []*croupierv1.UpdateInstancesRequest
	updateErr   error
	reports     []*croupierv1.ReportJobEventsRequest
	assignCalls int
	heartbeatFn func() (*croupierv1.HeartbeatResponse, error)
	reportFn    func(*croupierv1.ReportJobEventsRequest) (*croupierv1.ReportJobEventsResponse, error)
	assignments *croupierv1.GetAssignmentsResponse
}

func (f *fakeControl) RegisterAgent(_ context.Context, r *croupierv1.RegisterAgentRequest) (*croupierv1.RegisterAgentResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.registers = append(f.registers, r)
	return &croupierv1.RegisterAgentResponse{Success: true, AgentId: r.GetAgentId(), HeartbeatInterval: 3}, nil
}

func (f *fakeControl) UpdateInstances(_ context.Context, r *croupierv1.UpdateInstancesRequest) (*croupierv1.UpdateInstancesResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updates = append(f.updates, r)
	return &croupierv1.UpdateInstancesResponse{}, f.updateErr
}

func (f *fakeControl) Heartbeat(context.Context, *croupierv1.HeartbeatRequest) (*croupierv1.HeartbeatResponse, error) {
	f.mu.Lock()
	fn := f.heartbeatFn
	f.mu.Unlock()
	return fn()
}

func (f *fakeControl) GetAssignments(context.Context, *croupierv1.GetAssignmentsRequest) (*croupierv1.GetAssignmentsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.assignCalls++
	return f.assignments, nil
}

func (f *fakeControl) ReportJobEvents(_ context.Context, r *croupierv1.ReportJobEventsRequest) (*croupierv1.ReportJobEventsResponse, error) {
	f.mu.Lock()
	f.reports = append(f.reports, r)
	fn := f.reportFn
	f.mu.Unlock()
	return fn(r)
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newTestAgent is an agent that was never started (transport grpc; a test
// that gives it a tunnel client sets its own): its SDK tunnel server
// has no connections, and its ControlService is fake.
func newTestAgent(t *testing.T) (*Agent, *fakeControl) {
	t.Helper()
	ctl := &fakeControl{assignments: &croupierv1.GetAssignmentsResponse{Version: 1}}
	log := quietLog()
	sdk := tunnel.NewServer(tunnel.ServerOptions{Logger: log})
	t.Cleanup(sdk.Close)
	a := &Agent{
		cfg:         config.Agent{ID: "edge-1", Game: "demo", Env: "dev", Labels: []string{"region=eu"}, Transport: "grpc"},
		log:         log,
		instances:   newInstances(),
		validated:   schema.NewValidated(0),
		sdkTunnel:   sdk,
		control:     ctl,
		enabled:     map[string]bool{},
		staleAssign: make(chan struct{}, 1),
	}
	return a, ctl
}

func wantStatus(t *testing.T, err error, c codes.Code, info string) *croupierv1.ErrorInfo {
	t.Helper()
	if got := status.Code(err); got != c {
		t.Fatalf("status %s (%v); want %s", got, err, c)
	}
	ei := apierr.Info(err)
	if ei.GetCode() != info {
		t.Fatalf("ErrorInfo code %q (%v); want %q", ei.GetCode(), err, info)
	}
	return ei
}

func TestNewRefusesPlaintextOffLoopback(t *testing.T) {
	t.Parallel()
	base := config.DefaultAgent()
	base.ID, base.Game, base.Env, base.DataDir = "edge-1", "demo", "dev", t.TempDir()

	c := base
	c.SDKAddr = "0.0.0.0:19090"
	if _, err := New(c, nil); err == nil || !strings.Contains(err.Error(), "sdk_addr") {
		t.Fatalf("New with a non-loopback sdk_addr = %v", err)
	}
	c = base
	c.Insecure, c.Server = true, "10.1.2.3:8443"
	if _, err := New(c, nil); !errors.Is(err, tlsconf.ErrInsecureNotLoopback) {
		t.Fatalf("New insecure to a remote server = %v", err)
	}
	c = base
	c.Game = ""
	if _, err := New(c, nil); err == nil || !strings.Contains(err.Error(), "game_id") {
		t.Fatalf("New without a game = %v", err)
	}
	c = base
	c.Insecure = true
	if _, err := New(c, nil); err != nil {
		t.Fatalf("New insecure on loopback = %v", err)
	}
}

func TestRegisterInstanceRefusals(t *testing.T) {
	t.Parallel()
	a, _ := newTestAgent(t)
	svc := localService{a: a}
	bad := &croupierv1.FunctionDescriptor{Id: "player.get", ParamsSchema: &structpb.Struct{Fields: map[string]*structpb.Value{
		"type": structpb.NewNumberValue(3)}}}
	ok := &croupierv1.FunctionDescriptor{Id: "player.get"}
	tests := []struct {
		name string
		req  *agentv1.RegisterInstanceRequest
		code codes.Code
		info string
		msg  string
	}{
		{"no id", &agentv1.RegisterInstanceRequest{}, codes.InvalidArgument, apierr.CodeInvalidArgument, "instance_id is required"},
		// What the server would refuse in the agent's registration (and
		// then every update after it).
		{"slash in id", &agentv1.RegisterInstanceRequest{InstanceId: "eu/1"}, codes.InvalidArgument, apierr.CodeInvalidArgument, "may not contain '/'"},
		{"long id", &agentv1.RegisterInstanceRequest{InstanceId: strings.Repeat("x", 129)}, codes.InvalidArgument, apierr.CodeFieldLimit, "instance_id is 129 bytes"},
		{"space in id", &agentv1.RegisterInstanceRequest{InstanceId: "gs 1"}, codes.InvalidArgument, apierr.CodeFieldLimit, "may not contain spaces"},
		{"long label", &agentv1.RegisterInstanceRequest{InstanceId: "gs-1", Labels: map[string]string{"zone": strings.Repeat("v", 257)}},
			codes.InvalidArgument, apierr.CodeFieldLimit, "labels[zone]"},
		{"bad schema", &agentv1.RegisterInstanceRequest{InstanceId: "gs-1", Functions: []*croupierv1.FunctionDescriptor{bad}},
			codes.InvalidArgument, apierr.CodeInvalidDescriptor, `descriptor "player.get"`},
		{"listed twice", &agentv1.RegisterInstanceRequest{InstanceId: "gs-1", Functions: []*croupierv1.FunctionDescriptor{ok, ok}},
			codes.InvalidArgument, apierr.CodeInvalidDescriptor, "listed twice"},
		{"no tunnel", &agentv1.RegisterInstanceRequest{InstanceId: "gs-1", Functions: []*croupierv1.FunctionDescriptor{ok}},
			codes.FailedPrecondition, apierr.CodeAgentNotConnected, "has no open tunnel"},
	}
	for _, tt := range tests {
		_, err := svc.RegisterInstance(context.Background(), tt.req)
		ei := wantStatus(t, err, tt.code, tt.info)
		if !strings.Contains(ei.GetMessage(), tt.msg) {
			t.Errorf("%s: message %q does not contain %q", tt.name, ei.GetMessage(), tt.msg)
		}
	}
	if fns, _, infos, _ := a.instances.snapshot(); len(fns) != 0 || len(infos) != 0 {
		t.Fatalf("refused instances reached the table: %v", infos)
	}
}

// TestReportJobEventsForwarding: the agent keeps nothing; it forwards while
// registered (naming the instance as agent/instance) and says UNAVAILABLE
// otherwise, so the SDK keeps its events and retries.
func TestReportJobEventsForwarding(t *testing.T) {
	t.Parallel()
	a, ctl := newTestAgent(t)
	svc := localService{a: a}
	req := &agentv1.ReportJobEventsRequest{InstanceId: "gs-1", JobId: "job_1", Events: []*croupierv1.JobEvent{{Seq: 1}, {Seq: 2}}}
	_, err := svc.ReportJobEvents(context.Background(), req)
	wantStatus(t, err, codes.Unavailable, apierr.CodeUnavailable)
	if len(ctl.reports) != 0 {
		t.Fatal("forwarded while not registered")
	}

	a.setRegistered(true)
	ctl.reportFn = func(r *croupierv1.ReportJobEventsRequest) (*croupierv1.ReportJobEventsResponse, error) {
		return &croupierv1.ReportJobEventsResponse{AckedSeq: 2, Status: "running"}, nil
	}
	resp, err := svc.ReportJobEvents(context.Background(), req)
	if err != nil || resp.GetAckedSeq() != 2 || resp.GetStatus() != "running" {
		t.Fatalf("ReportJobEvents = %v, %v", resp, err)
	}
	fwd := ctl.reports[0]
	if fwd.GetAgentId() != "edge-1" || fwd.GetInstance() != "edge-1/gs-1" || fwd.GetJobId() != "job_1" || len(fwd.GetEvents()) != 2 {
		t.Fatalf("forwarded %v", fwd)
	}

	gap := apierr.New(codes.FailedPrecondition, "EVENT_GAP", "expected event seq 1", "expected_seq", "1")
	ctl.reportFn = func(*croupierv1.ReportJobEventsRequest) (*croupierv1.ReportJobEventsResponse, error) { return nil, gap }
	_, err = svc.ReportJobEvents(context.Background(), req)
	if ei := wantStatus(t, err, codes.FailedPrecondition, "EVENT_GAP"); ei.GetDetails()["expected_seq"] != "1" {
		t.Fatalf("server error not passed through: %v", ei)
	}
}

func TestHandlersWithoutInstances(t *testing.T) {
	t.Parallel()
	a, _ := newTestAgent(t)
	ctx := context.Background()
	_, err := a.handleInvoke(ctx, &agentv1.InvokeRequest{FunctionId: "player.get"})
	wantStatus(t, err, codes.Unavailable, apierr.CodeNoInstance)

	a.enabled["player.ban"] = false
	_, err = a.handleInvoke(ctx, &agentv1.InvokeRequest{FunctionId: "player.ban"})
	wantStatus(t, err, codes.FailedPrecondition, apierr.CodeFunctionDisabled)

	_, err = a.handleStartJob(ctx, &agentv1.StartJobRequest{JobId: "job_1", Invocation: &agentv1.InvokeRequest{FunctionId: "mail.send", InstanceId: "gs-1"}})
	wantStatus(t, err, codes.Unavailable, apierr.CodeNoInstance)

	resp, err := a.handleCancelJob(ctx, &agentv1.CancelJobRequest{JobId: "job_1", InstanceId: "gs-1"})
	if err != nil || resp.GetFound() {
		t.Fatalf("cancel on a disconnected instance = %v, %v; want found=false", resp, err)
	}
}

// TestRegisterAndHeartbeat covers one session's calls: register sends the
// instance table and fetches assignments; a heartbeat with a newer version
// refetches them; NOT_FOUND asks for a re-registration.
func TestRegisterAndHeartbeat(t *testing.T) {
	t.Parallel()
	a, ctl := newTestAgent(t)
	a.instances.put(inst("gs-1", "inc-1", "player.get", "player.ban"))
	<-a.instances.changed
	ctl.assignments = &croupierv1.GetAssignmentsResponse{Version: 4, Assignments: []*croupierv1.FunctionAssignment{
		{FunctionId: "player.get", Enabled: true}, {FunctionId: "player.ban", Enabled: false}}}

	interval, err := a.register(context.Background())
	if err != nil || interval.Seconds() != 3 || !a.Registered() {
		t.Fatalf("register = %v, %v (registered %v)", interval, err, a.Registered())
	}
	r := ctl.registers[0]
	if r.GetAgentId() != "edge-1" || r.GetGameId() != "demo" || r.GetEnv() != "dev" || r.GetLabels()["region"] != "eu" ||
		len(r.GetInstances()) != 1 || r.GetInstances()[0].GetIncarnation() != "inc-1" || len(r.GetDescriptors()) != 2 {
		t.Fatalf("registration sent %v", r)
	}
	_, err = a.handleInvoke(context.Background(), &agentv1.InvokeRequest{FunctionId: "player.ban"})
	wantStatus(t, err, codes.FailedPrecondition, apierr.CodeFunctionDisabled)

	// Same version: no refetch.
	ctl.heartbeatFn = func() (*croupierv1.HeartbeatResponse, error) {
		return &croupierv1.HeartbeatResponse{Success: true, AssignmentsVersion: 4}, nil
	}
	a.heartbeat(context.Background())
	if ctl.assignCalls != 1 {
		t.Fatalf("GetAssignments called %d times, want 1", ctl.assignCalls)
	}
	// Newer version: refetch; player.ban is enabled again.
	ctl.assignments = &croupierv1.GetAssignmentsResponse{Version: 5, Assignments: []*croupierv1.FunctionAssignment{{FunctionId: "player.ban", Enabled: true}}}
	ctl.heartbeatFn = func() (*croupierv1.HeartbeatResponse, error) {
		return &croupierv1.HeartbeatResponse{Success: true, AssignmentsVersion: 5}, nil
	}
	a.heartbeat(context.Background())
	if ctl.assignCalls != 2 {
		t.Fatalf("GetAssignments called %d times, want 2", ctl.assignCalls)
	}
	if _, err := a.handleInvoke(context.Background(), &agentv1.InvokeRequest{FunctionId: "player.ban"}); status.Code(err) == codes.FailedPrecondition {
		t.Fatal("re-enabled function still refused")
	}
	// The server forgot the agent: re-register at once.
	ctl.heartbeatFn = func() (*croupierv1.HeartbeatResponse, error) {
		return nil, apierr.New(codes.NotFound, apierr.CodeAgentNotFound, "agent edge-1 is not registered")
	}
	a.heartbeat(context.Background())
	select {
	case <-a.instances.changed:
	default:
		t.Fatal("NOT_FOUND on heartbeat did not trigger a re-registration")
	}
}

// TestTunnelBeat: a pong the server counted as the heartbeat records the
// beat, and a version other than the agent's asks the session to refetch
// the assignments.
func TestTunnelBeat(t *testing.T) {
	t.Parallel()
	a, _ := newTestAgent(t)
	a.mu.Lock()
	a.assignVer = 4
	a.mu.Unlock()
	before := time.Now().UnixNano()
	a.tunnelBeat(4)
	if a.beatAt.Load() < before {
		t.Fatal("tunnelBeat did not record the beat")
	}
	select {
	case <-a.staleAssign:
		t.Fatal("same version asked for a refetch")
	default:
	}
	a.tunnelBeat(5)
	a.tunnelBeat(5) // a second signal before the session reads is merged
	select {
	case <-a.staleAssign:
	default:
		t.Fatal("newer version did not ask for a refetch")
	}
	select {
	case <-a.staleAssign:
		t.Fatal("two stale pongs queued two refetches")
	default:
	}
}

// TestOneRegistrationPerStart: instances that connected before the tunnel
// are in the first registration, so the change they signalled must not
// cause a second one.
func TestOneRegistrationPerStart(t *testing.T) {
	t.Parallel()
	a, ctl := newTestAgent(t)
	a.instances.put(inst("gs-1", "inc-1", "player.get"))
	a.instances.put(inst("gs-2", "inc-1", "player.get"))
	if _, err := a.register(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(ctl.registers) != 1 || len(ctl.registers[0].GetInstances()) != 2 {
		t.Fatalf("registrations = %v, want one with both instances", ctl.registers)
	}
	if changed(a.instances) {
		t.Fatal("a change already reported by the registration is still pending")
	}
	a.instances.put(inst("gs-3", "inc-1", "player.get"))
	if !changed(a.instances) {
		t.Fatal("a later change is not pending")
	}
}

// TestInstanceChangesSendOnlyTheChange: after the first registration, an
// instance connecting or leaving is sent as an UpdateInstances delta, not
// a full registration; an older server without it gets full ones.
func TestInstanceChangesSendOnlyTheChange(t *testing.T) {
	t.Parallel()
	a, ctl := newTestAgent(t)
	for i := range 50 {
		a.instances.put(inst(fmt.Sprintf("gs-%02d", i), "inc-1", "player.get"))
	}
	if _, err := a.register(context.Background()); err != nil {
		t.Fatal(err)
	}
	a.instances.put(inst("gs-new", "inc-2", "player.get", "player.ban"))
	a.instances.remove("gs-07")
	a.syncInstances(context.Background())
	if len(ctl.registers) != 1 || len(ctl.updates) != 1 {
		t.Fatalf("%d registrations and %d updates, want 1 and 1", len(ctl.registers), len(ctl.updates))
	}
	u := ctl.updates[0]
	if len(u.GetUpserted()) != 1 || u.GetUpserted()[0].GetInstanceId() != "gs-new" || len(u.GetDescriptors()) != 2 ||
		len(u.GetRemoved()) != 1 || u.GetRemoved()[0] != "gs-07" || len(u.GetDeparted()) != 1 || u.GetDeparted()[0].GetIncarnation() != "inc-1" {
		t.Fatalf("update = %v, want gs-new upserted and gs-07 removed", u)
	}
	a.syncInstances(context.Background()) // nothing changed: nothing sent
	if len(ctl.updates) != 1 {
		t.Fatalf("%d updates after a no-op sync", len(ctl.updates))
	}

	// A failed update is retried with the same change, a second later
	// (not in a tight loop against a server that refuses).
	ctl.updateErr = status.Error(codes.Unavailable, "down")
	a.instances.put(inst("gs-x", "inc-1", "player.get"))
	changed(a.instances) // the put's signal, which the session's loop would take
	if retry := a.syncInstances(context.Background()); retry == nil {
		t.Fatal("a failed update is not retried")
	}
	if changed(a.instances) {
		t.Fatal("a failed update is retried at once (a tight loop against a server that refuses)")
	}
	ctl.updateErr = nil
	a.syncInstances(context.Background())
	if u := ctl.updates[len(ctl.updates)-1]; len(u.GetUpserted()) != 1 || u.GetUpserted()[0].GetInstanceId() != "gs-x" {
		t.Fatalf("retried update = %v", u)
	}

	// An older server: full registrations from then on.
	ctl.updateErr = status.Error(codes.Unimplemented, "unknown method")
	a.instances.put(inst("gs-y", "inc-1", "player.get"))
	a.syncInstances(context.Background())
	if len(ctl.registers) != 2 || len(ctl.registers[1].GetInstances()) != 52 {
		t.Fatalf("fallback registrations = %d (last with %d instances), want a full one with 52", len(ctl.registers), len(ctl.registers[len(ctl.registers)-1].GetInstances()))
	}
}
