package control

import (
	"context"
	"fmt"
	"testing"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/registry"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestHeartbeat(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	_, err := h.svc.Heartbeat(context.Background(), &croupierv1.HeartbeatRequest{AgentId: "a"})
	ei := wantStatus(t, err, codes.NotFound, apierr.CodeAgentNotFound)
	if ei.GetDetails()["agent_id"] != "a" {
		t.Fatalf("details %v", ei.GetDetails())
	}

	h.register(t, registration())
	h.clock.Advance(7 * time.Second)
	resp, err := h.svc.Heartbeat(agentCtx("a", game, env), &croupierv1.HeartbeatRequest{AgentId: "a"})
	if err != nil || !resp.GetSuccess() || resp.GetAssignmentsVersion() != 0 {
		t.Fatalf("Heartbeat = %v, %v", resp, err)
	}
	if a, _ := h.reg.Agent("a"); !a.LastHeartbeat.Equal(h.clock.Now()) {
		t.Fatalf("last heartbeat %v, want %v", a.LastHeartbeat, h.clock.Now())
	}
	_, err = h.svc.Heartbeat(agentCtx("b", game, env), &croupierv1.HeartbeatRequest{AgentId: "a"})
	wantStatus(t, err, codes.PermissionDenied, apierr.CodeScopeMismatch)

	// The heartbeat carries the assignments version, so agents see changes.
	if _, err := h.svc.UpdateAssignment(context.Background(), &croupierv1.UpdateAssignmentRequest{
		GameId: game, Env: env, FunctionId: "player.ban", Enabled: false}); err != nil {
		t.Fatal(err)
	}
	resp, err = h.svc.Heartbeat(context.Background(), &croupierv1.HeartbeatRequest{AgentId: "a"})
	if err != nil || resp.GetAssignmentsVersion() != 1 {
		t.Fatalf("Heartbeat after an update = %v, %v; want version 1", resp, err)
	}
}

// TestTunnelHeartbeat: a ping on the agent's tunnel does what Heartbeat
// does, and says when it could not (the agent then calls Heartbeat).
func TestTunnelHeartbeat(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	if v, ok := h.svc.TunnelHeartbeat("a"); ok {
		t.Fatalf("TunnelHeartbeat of an unregistered agent = %d, true", v)
	}
	h.register(t, registration())
	h.clock.Advance(7 * time.Second)
	// The scope was never read on this node: the beat counts, the pong
	// carries no version, and the version is read in the background.
	if v, ok := h.svc.TunnelHeartbeat("a"); ok {
		t.Fatalf("TunnelHeartbeat before the scope was read = %d, true", v)
	}
	if a, _ := h.reg.Agent("a"); !a.LastHeartbeat.Equal(h.clock.Now()) {
		t.Fatalf("last heartbeat %v, want %v", a.LastHeartbeat, h.clock.Now())
	}
	waitUntil(t, func() bool { _, ok := h.svc.TunnelHeartbeat("a"); return ok }, "the scope's version")
	if v, ok := h.svc.TunnelHeartbeat("a"); !ok || v != 0 {
		t.Fatalf("TunnelHeartbeat = %d, %v; want 0, true", v, ok)
	}
	if a, _ := h.reg.Agent("a"); !a.LastHeartbeat.Equal(h.clock.Now()) {
		t.Fatalf("last heartbeat %v, want %v", a.LastHeartbeat, h.clock.Now())
	}
	if _, err := h.svc.UpdateAssignment(context.Background(), &croupierv1.UpdateAssignmentRequest{
		GameId: game, Env: env, FunctionId: "player.ban", Enabled: false}); err != nil {
		t.Fatal(err)
	}
	// The update marked the scope stale: the next beat still answers the
	// old version and refreshes; a later one answers the new.
	if v, ok := h.svc.TunnelHeartbeat("a"); !ok || v != 0 {
		t.Fatalf("TunnelHeartbeat right after an update = %d, %v; want the cached 0, true", v, ok)
	}
	waitUntil(t, func() bool { v, ok := h.svc.TunnelHeartbeat("a"); return ok && v == 1 }, "version 1 after the update")
	// Beats keep the agent from expiring; without them it goes.
	h.clock.Advance(25 * time.Second)
	h.svc.TunnelHeartbeat("a")
	h.clock.Advance(25 * time.Second)
	if gone := h.svc.Expire(); len(gone) != 0 {
		t.Fatalf("Expire removed %v after a tunnel heartbeat 25 s ago", gone)
	}
	h.clock.Advance(10 * time.Second)
	if gone := h.svc.Expire(); len(gone) != 1 {
		t.Fatalf("Expire removed %v 35 s after the last beat; want [a]", gone)
	}
	if _, ok := h.svc.TunnelHeartbeat("a"); ok {
		t.Fatal("TunnelHeartbeat counted a beat of an expired agent")
	}
}

func TestAssignments(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	_, err := h.svc.GetAssignments(context.Background(), &croupierv1.GetAssignmentsRequest{AgentId: "a"})
	wantStatus(t, err, codes.NotFound, apierr.CodeAgentNotFound)
	h.register(t, registration())

	// Defaults: every function the agent serves is enabled, version 0.
	resp, err := h.svc.GetAssignments(context.Background(), &croupierv1.GetAssignmentsRequest{AgentId: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(assignmentList(resp)); got != "[player.ban:true:map[] player.get:true:map[]]" || resp.GetVersion() != 0 {
		t.Fatalf("default assignments %s version %d", got, resp.GetVersion())
	}
	_, err = h.svc.GetAssignments(agentCtx("b", "", ""), &croupierv1.GetAssignmentsRequest{AgentId: "a"})
	wantStatus(t, err, codes.PermissionDenied, apierr.CodeScopeMismatch)

	var last int64
	for i, upd := range []*croupierv1.UpdateAssignmentRequest{
		{GameId: game, Env: env, FunctionId: "player.ban", Enabled: false, Config: map[string]string{"reason": "audit"}},
		{GameId: game, Env: env, FunctionId: "player.get", Enabled: true, Config: map[string]string{"cache": "on"}},
		{GameId: game, Env: env, FunctionId: "not.served", Enabled: false},
	} {
		u, err := h.svc.UpdateAssignment(context.Background(), upd)
		if err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
		if u.GetVersion() <= last {
			t.Fatalf("update %d: version %d did not increase from %d", i, u.GetVersion(), last)
		}
		last = u.GetVersion()
		if u.GetAssignment().GetFunctionId() != upd.GetFunctionId() || u.GetAssignment().GetEnabled() != upd.GetEnabled() {
			t.Fatalf("update %d answered %v", i, u.GetAssignment())
		}
	}
	resp, err = h.svc.GetAssignments(context.Background(), &croupierv1.GetAssignmentsRequest{AgentId: "a"})
	if err != nil {
		t.Fatal(err)
	}
	// Only the functions the agent serves, with what was set.
	if got := fmt.Sprint(assignmentList(resp)); got != "[player.ban:false:map[reason:audit] player.get:true:map[cache:on]]" || resp.GetVersion() != last {
		t.Fatalf("assignments %s version %d, want version %d", got, resp.GetVersion(), last)
	}
	// The registry reports the enablement to watchers.
	regs := h.reg.Registrations(registry.Filter{Game: game, Env: env, Function: "player.ban"})
	if len(regs) != 1 || regs[0].GetEnabled() {
		t.Fatalf("registry still shows player.ban enabled: %v", regs)
	}
	// And the invoke path reads it.
	if on, cfg, err := h.assignments.Assignment(context.Background(), game, env, "player.ban"); err != nil || on || cfg["reason"] != "audit" {
		t.Fatalf("Assignment(player.ban) = %v, %v, %v", on, cfg, err)
	}
	if on, cfg, err := h.assignments.Assignment(context.Background(), game, env, "never.set"); err != nil || !on || cfg != nil {
		t.Fatalf("Assignment(never.set) = %v, %v, %v; want enabled without config", on, cfg, err)
	}
}

func assignmentList(r *croupierv1.GetAssignmentsResponse) []string {
	var out []string
	for _, a := range r.GetAssignments() {
		out = append(out, fmt.Sprintf("%s:%v:%v", a.GetFunctionId(), a.GetEnabled(), a.GetConfig()))
	}
	return out
}

func TestUpdateAssignmentRefusals(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	_, err := h.svc.UpdateAssignment(context.Background(), &croupierv1.UpdateAssignmentRequest{GameId: game, Env: env})
	wantStatus(t, err, codes.InvalidArgument, apierr.CodeInvalidArgument)
	_, err = h.svc.UpdateAssignment(context.Background(), &croupierv1.UpdateAssignmentRequest{GameId: game, Env: "prod", FunctionId: "f"})
	wantStatus(t, err, codes.NotFound, apierr.CodeUnknownScope)
}

// TestAssignmentsCache: changes made through this node are visible at once;
// changes made by another node (straight to the database) within the ttl.
func TestAssignmentsCache(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	if on, _, _ := h.assignments.Assignment(ctx, game, env, "f"); !on {
		t.Fatal("f disabled by default")
	}
	if _, err := h.st.Assignments().Set(ctx, game, env, "f", false, nil); err != nil { // another node
		t.Fatal(err)
	}
	if on, _, _ := h.assignments.Assignment(ctx, game, env, "f"); !on {
		t.Fatal("the cache did not hold within its ttl")
	}
	h.clock.Advance(time.Minute)
	if on, _, _ := h.assignments.Assignment(ctx, game, env, "f"); on {
		t.Fatal("another node's change not seen after the ttl")
	}
	if _, err := h.assignments.Set(ctx, game, env, "f", true, nil); err != nil { // this node
		t.Fatal(err)
	}
	if on, _, _ := h.assignments.Assignment(ctx, game, env, "f"); !on {
		t.Fatal("this node's change not seen at once")
	}
}

// TestScopesCache: declared scopes are cached; an undeclared one is asked
// again, so a declaration by another node is seen.
func TestScopesCache(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	scopes := NewScopes(h.st.Scopes())
	if ok, err := scopes.Declared(ctx, "other", "dev"); err != nil || ok {
		t.Fatalf("Declared(undeclared) = %v, %v", ok, err)
	}
	if err := h.st.Scopes().Declare(ctx, "other", "dev"); err != nil {
		t.Fatal(err)
	}
	if ok, err := scopes.Declared(ctx, "other", "dev"); err != nil || !ok {
		t.Fatalf("Declared after another node declared it = %v, %v", ok, err)
	}
	if ok, err := scopes.Declared(ctx, game, env); err != nil || !ok {
		t.Fatalf("Declared(%s/%s) = %v, %v", game, env, ok, err)
	}
}

// TestExpire: an agent is removed after three missed heartbeat intervals,
// not before; heartbeats keep it.
func TestExpire(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.tunnel.set("b", true)
	h.register(t, registration())
	b := registration()
	b.AgentId = "b"
	h.register(t, b)

	h.clock.Advance(20 * time.Second)
	if _, err := h.svc.Heartbeat(context.Background(), &croupierv1.HeartbeatRequest{AgentId: "b"}); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(9 * time.Second) // a: 29s silent
	if gone := h.svc.Expire(); len(gone) != 0 {
		t.Fatalf("Expire at 29s removed %v", gone)
	}
	h.clock.Advance(2 * time.Second) // a: 31s silent, b: 11s
	if gone := h.svc.Expire(); fmt.Sprint(gone) != "[a]" {
		t.Fatalf("Expire at 31s removed %v, want [a]", gone)
	}
	if _, ok := h.reg.Agent("a"); ok {
		t.Fatal("expired agent still registered")
	}
	if _, ok := h.reg.Agent("b"); !ok {
		t.Fatal("the agent that heartbeated was removed")
	}
	_, err := h.svc.Heartbeat(context.Background(), &croupierv1.HeartbeatRequest{AgentId: "a"})
	wantStatus(t, err, codes.NotFound, apierr.CodeAgentNotFound) // the agent re-registers on this
	if gone := h.svc.Expire(); len(gone) != 0 {
		t.Fatalf("second Expire removed %v", gone)
	}
}

// TestHeartbeatOfAGoneCaller: an agent that hangs up mid-heartbeat gets
// CANCELED, not an INTERNAL error logged as the server's fault.
func TestHeartbeatOfAGoneCaller(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.register(t, registration())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := h.svc.Heartbeat(ctx, &croupierv1.HeartbeatRequest{AgentId: "a"})
	if status.Code(err) != codes.Canceled {
		t.Fatalf("Heartbeat with a cancelled context = %v, want CANCELED", err)
	}
}
