package control

import (
	"context"
	"strings"
	"testing"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/principal"
	"github.com/croupier/croupier/internal/registry"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

func TestRegisterAgentAuthorization(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ctx  context.Context
		code codes.Code // OK: allowed
		msg  string
	}{
		{"anonymous (loopback, insecure)", context.Background(), codes.OK, ""},
		{"agent credential for itself", agentCtx("a", game, env), codes.OK, ""},
		{"unconfined agent credential", agentCtx("a", "", ""), codes.OK, ""},
		{"another agent's credential", agentCtx("b", game, env), codes.PermissionDenied, `credential is for agent "b", not "a"`},
		{"credential for another game", agentCtx("a", "other", env), codes.PermissionDenied, "confined to other/dev"},
		{"credential for another env", agentCtx("a", game, "prod"), codes.PermissionDenied, "confined to demo/prod"},
		{"operator", principal.NewContext(context.Background(), principal.Principal{Kind: principal.Operator, Name: "alice"}),
			codes.PermissionDenied, "only agents"},
	}
	h := newHarness(t) // shared: each case starts and ends without agent a
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer h.reg.Remove("a")
			resp, err := h.svc.RegisterAgent(tt.ctx, registration())
			if tt.code == codes.OK {
				if err != nil || !resp.GetSuccess() || resp.GetAgentId() != "a" {
					t.Fatalf("RegisterAgent = %v, %v; want success", resp, err)
				}
				if _, ok := h.reg.Agent("a"); !ok {
					t.Fatal("an accepted agent is not in the registry")
				}
				return
			}
			ei := wantStatus(t, err, tt.code, apierr.CodeScopeMismatch)
			if !strings.Contains(ei.GetMessage(), tt.msg) {
				t.Fatalf("message %q does not contain %q", ei.GetMessage(), tt.msg)
			}
			if _, ok := h.reg.Agent("a"); ok {
				t.Fatal("a refused agent reached the registry")
			}
		})
	}
}

func TestRegisterAgentRefusals(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.tunnel.set("a/b", true)
	tests := []struct {
		name    string
		mutate  func(r *croupierv1.RegisterAgentRequest)
		code    codes.Code
		info    string
		msg     []string
		details map[string]string
	}{
		{"missing agent id", func(r *croupierv1.RegisterAgentRequest) { r.AgentId = "" }, codes.InvalidArgument, apierr.CodeInvalidArgument,
			[]string{"agent_id, game_id and env are required"}, nil},
		{"missing env", func(r *croupierv1.RegisterAgentRequest) { r.Env = "" }, codes.InvalidArgument, apierr.CodeInvalidArgument, nil, nil},
		{"undeclared scope", func(r *croupierv1.RegisterAgentRequest) { r.Env = "prod" }, codes.FailedPrecondition, apierr.CodeUnknownScope,
			[]string{"demo/prod is not declared", "--scopes"}, map[string]string{"game_id": game, "env": "prod"}},
		{"no tunnel", func(r *croupierv1.RegisterAgentRequest) { r.AgentId = "b" }, codes.FailedPrecondition, apierr.CodeAgentNotConnected,
			[]string{"agent b has no open tunnel"}, map[string]string{"agent_id": "b"}},
		{"schema does not compile", func(r *croupierv1.RegisterAgentRequest) {
			r.Descriptors[1].ParamsSchema = mustStruct(t, map[string]any{"type": "object", "properties": map[string]any{"n": map[string]any{"type": 5.0}}})
		}, codes.InvalidArgument, apierr.CodeInvalidDescriptor, []string{`descriptor "player.ban"`, "params_schema"},
			map[string]string{"function_id": "player.ban"}},
		{"bad function id", func(r *croupierv1.RegisterAgentRequest) { r.Descriptors[0].Id = "9lives" }, codes.InvalidArgument,
			apierr.CodeInvalidDescriptor, []string{`descriptor "9lives"`, "must start with a letter"}, map[string]string{"function_id": "9lives"}},
		{"instance without id", func(r *croupierv1.RegisterAgentRequest) { r.Instances[1].InstanceId = "" }, codes.InvalidArgument,
			apierr.CodeInvalidArgument, []string{"instance_id is required"}, nil},
		{"duplicate instance", func(r *croupierv1.RegisterAgentRequest) { r.Instances[1].InstanceId = "gs-1" }, codes.InvalidArgument,
			apierr.CodeInvalidArgument, []string{`instance id "gs-1" appears twice`}, nil},
		{"agent id with a slash", func(r *croupierv1.RegisterAgentRequest) { r.AgentId = "a/b" }, codes.InvalidArgument,
			apierr.CodeInvalidArgument, []string{"must not contain '/'"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := registration()
			tt.mutate(req)
			_, err := h.svc.RegisterAgent(context.Background(), req)
			ei := wantStatus(t, err, tt.code, tt.info)
			for _, m := range tt.msg {
				if !strings.Contains(ei.GetMessage(), m) {
					t.Errorf("message %q does not contain %q", ei.GetMessage(), m)
				}
			}
			for k, v := range tt.details {
				if ei.GetDetails()[k] != v {
					t.Errorf("detail %s = %q, want %q", k, ei.GetDetails()[k], v)
				}
			}
		})
	}
	if agents := h.reg.Agents("", ""); len(agents) != 0 {
		t.Fatalf("refused registrations reached the registry: %v", agents)
	}
	if d := h.departures(); len(d) != 0 {
		t.Fatalf("refused registrations reported departures: %v", d)
	}
}

// TestRegisterAgentContents: what the registry holds after a registration,
// and that a re-registration replaces it.
func TestRegisterAgentContents(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	resp := h.register(t, registration())
	if resp.GetHeartbeatInterval() != 10 {
		t.Fatalf("heartbeat interval %d, want 10", resp.GetHeartbeatInterval())
	}
	a, ok := h.reg.Agent("a")
	if !ok {
		t.Fatal("agent not registered")
	}
	if a.GameID != game || a.Env != env || a.Version != "1.2.3" || a.Labels["region"] != "eu" || !a.LastHeartbeat.Equal(h.clock.Now()) {
		t.Fatalf("agent = %+v", a)
	}
	if len(a.Instances) != 2 || a.Instances[0].ID != "gs-1" || len(a.Instances[0].Functions) != 2 || a.Instances[1].ID != "gs-2" {
		t.Fatalf("instances = %+v", a.Instances)
	}
	if len(a.Descriptors) != 2 || a.Descriptors[0].GetId() != "player.ban" || a.Descriptors[1].GetId() != "player.get" {
		t.Fatalf("descriptors (sorted by id) = %v", a.Descriptors)
	}
	if got := h.reg.Instances(game, env, "player.get"); len(got) != 2 {
		t.Fatalf("player.get served by %v", got)
	}

	// Re-registering replaces: gs-2 is gone, player.ban with it.
	req := registration()
	req.Instances = req.Instances[1:]
	req.Descriptors = req.Descriptors[:1]
	h.register(t, req)
	if got := h.reg.Instances(game, env, "player.ban"); len(got) != 0 {
		t.Fatalf("player.ban still served by %v after re-registration", got)
	}
	if got := h.reg.Instances(game, env, "player.get"); len(got) != 1 || got[0] != (registry.InstanceRef{Agent: "a", Instance: "gs-2"}) {
		t.Fatalf("player.get served by %v", got)
	}
}

// TestRegisterAgentIncarnations: the registry must know each instance's
// incarnation, so jobs can tell a restarted game server from the old one.
func TestRegisterAgentIncarnations(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.register(t, registration())
	a, _ := h.reg.Agent("a")
	if len(a.Instances) != 2 || a.Instances[0].Incarnation != "inc-1" || a.Instances[1].Incarnation != "inc-9" {
		t.Fatalf("instances = %+v; want incarnations inc-1, inc-9", a.Instances)
	}
}

// TestRegisterAgentSeedStyle: an agent that lists functions without
// instances is one instance named "default".
func TestRegisterAgentSeedStyle(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.register(t, &croupierv1.RegisterAgentRequest{AgentId: "a", GameId: game, Env: env, Functions: []string{"player.get"}})
	got := h.reg.Instances(game, env, "player.get")
	if len(got) != 1 || got[0].Instance != "default" {
		t.Fatalf("player.get served by %v, want a/default", got)
	}
	if d, ok := h.reg.Descriptor(game, env, "player.get"); !ok || !proto.Equal(d, descriptor("player.get")) {
		t.Fatalf("placeholder descriptor = %v, %v", d, ok)
	}
}

func TestRegisterAgentDeparted(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.register(t, registration())
	if d := h.departures(); len(d) != 0 {
		t.Fatalf("Departed called without departures: %v", d)
	}
	req := registration()
	req.Instances = req.Instances[:1]
	req.Departed = []*croupierv1.InstanceInfo{{InstanceId: "gs-2", Incarnation: "inc-9"}, {InstanceId: "gs-3"}}
	h.register(t, req)
	d := h.departures()
	if len(d) != 1 || d[0].agent != "a" || len(d[0].gone) != 2 || d[0].gone["gs-2"] != "inc-9" || d[0].gone["gs-3"] != "" {
		t.Fatalf("departures = %+v", d)
	}
	if _, ok := d[0].gone["gs-3"]; !ok {
		t.Fatal("a departure without incarnation was dropped")
	}
}

func TestRegisterAgentHeartbeatIntervalFloor(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, tt := range []struct {
		interval time.Duration
		want     int64
	}{{500 * time.Millisecond, 1}, {1500 * time.Millisecond, 1}, {30 * time.Second, 30}} {
		h.svc.cfg.HeartbeatInterval = tt.interval
		if got := h.register(t, registration()).GetHeartbeatInterval(); got != tt.want {
			t.Errorf("interval %s: told agents %ds, want %d", tt.interval, got, tt.want)
		}
	}
}

func mustStruct(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestUpdateInstances(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	_, err := h.svc.UpdateInstances(ctx, &croupierv1.UpdateInstancesRequest{AgentId: "a"})
	wantStatus(t, err, codes.NotFound, apierr.CodeAgentNotFound)
	h.register(t, registration())

	_, err = h.svc.UpdateInstances(agentCtx("b", game, env), &croupierv1.UpdateInstancesRequest{AgentId: "a"})
	wantStatus(t, err, codes.PermissionDenied, apierr.CodeScopeMismatch)
	_, err = h.svc.UpdateInstances(ctx, &croupierv1.UpdateInstancesRequest{AgentId: "a",
		Descriptors: []*croupierv1.FunctionDescriptor{{Id: "bad id!"}}})
	wantStatus(t, err, codes.InvalidArgument, apierr.CodeInvalidDescriptor)
	// A node not holding the agent's tunnel (in a cluster its record here
	// is another node's copy) refuses the change.
	h.tunnel.set("a", false)
	_, err = h.svc.UpdateInstances(ctx, &croupierv1.UpdateInstancesRequest{AgentId: "a", Removed: []string{"gs-1"}})
	wantStatus(t, err, codes.FailedPrecondition, apierr.CodeAgentNotConnected)
	h.tunnel.set("a", true)

	if _, err := h.svc.UpdateInstances(ctx, &croupierv1.UpdateInstancesRequest{AgentId: "a",
		Upserted:    []*croupierv1.InstanceInfo{{InstanceId: "gs-3", Functions: []string{"player.kick"}, Incarnation: "inc-3"}},
		Removed:     []string{"gs-2"},
		Descriptors: []*croupierv1.FunctionDescriptor{descriptor("player.kick")},
		Departed:    []*croupierv1.InstanceInfo{{InstanceId: "gs-2", Incarnation: "inc-9"}},
	}); err != nil {
		t.Fatal(err)
	}
	if got := h.reg.Instances(game, env, "player.kick"); len(got) != 1 || got[0].Key() != "a/gs-3" {
		t.Fatalf("player.kick instances = %v", got)
	}
	if got := h.reg.Instances(game, env, "player.get"); len(got) != 1 || got[0].Key() != "a/gs-1" {
		t.Fatalf("player.get instances = %v, want only a/gs-1", got)
	}
	if d := h.departures(); len(d) != 1 || d[0].gone["gs-2"] != "inc-9" {
		t.Fatalf("departures = %v", d)
	}
}
