package gse_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/api/tencentcloud/gse/grpcsdk"
	"github.com/croupier/croupier/internal/fleet"
	"github.com/croupier/croupier/internal/store"
)

func TestMetadataIsRequired(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.fleet("f1")
	a := e.agent(e.config("a1"))
	g := e.fakeGame(a)
	call := func(kv ...string) *grpcsdk.GseResponse {
		t.Helper()
		c := metadata.AppendToOutgoingContext(ctx(t), kv...)
		resp, err := g.gse.ReportCustomData(c, &grpcsdk.ReportCustomDataRequest{CurrentCustomCount: 1})
		mustNil(t, err, "call")
		return resp
	}
	pid := strconv.Itoa(g.pid)
	for _, tc := range []struct {
		name string
		kv   []string
		want string
	}{
		{"no metadata", nil, `missing gRPC metadata "pid"`},
		{"no requestId", []string{"pid", pid}, `missing gRPC metadata "requestId"`},
		{"pid not a number", []string{"pid", "abc", "requestId", "r"}, `malformed gRPC metadata "pid": "abc"`},
		{"pid zero", []string{"pid", "0", "requestId", "r"}, `malformed gRPC metadata "pid"`},
		{"pid negative", []string{"pid", "-4", "requestId", "r"}, `malformed gRPC metadata "pid"`},
		{"unknown pid", []string{"pid", pid, "requestId", "r1"}, "call ProcessReady first"},
		{"empty requestId", []string{"pid", pid, "requestId", ""}, `missing gRPC metadata "requestId"`},
	} {
		resp := call(tc.kv...)
		if resp.GetStatus() != grpcsdk.GseResponse_ERROR_400 || !strings.Contains(resp.GetErrorMessage(), tc.want) {
			t.Errorf("%s: %v, want ERROR_400 containing %q", tc.name, resp, tc.want)
		}
	}
	// Any spelling of the key works: gRPC lower-cases it on the wire.
	g.ready()
	for _, key := range []string{"requestId", "requestid", "RequestId"} {
		if resp := call("pid", pid, key, "x-"+key); resp.GetStatus() != grpcsdk.GseResponse_OK {
			t.Errorf("key %s: %v", key, resp)
		}
	}
	_, err := g.gse.DescribePlayerSessions(ctx(t), &grpcsdk.DescribePlayerSessionsRequest{})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "pid") {
		t.Errorf("DescribePlayerSessions without metadata: %v", err)
	}
	resp, err := g.gse.ProcessReady(g.md(), &grpcsdk.ProcessReadyRequest{GrpcPort: 0})
	mustNil(t, err, "ProcessReady")
	if resp.GetStatus() != grpcsdk.GseResponse_ERROR_400 || !strings.Contains(resp.GetErrorMessage(), "grpcPort") {
		t.Errorf("ProcessReady without grpcPort: %v", resp)
	}
}

// TestLifecycle runs a GSE game (in-process, raw protos) through every
// call: ready, a session activated from inside OnStartGameServerSession,
// players, policy, custom data, the session's end and ProcessEnding.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.fleet("f1")
	a := e.agent(e.config("a1"))
	g := e.fakeGame(a)
	g.ready()
	var procID string
	eventually(t, 5*time.Second, func() bool {
		ps := e.liveProcesses("f1", store.ProcessActive)
		if len(ps) == 1 {
			procID = ps[0].GetProcessId()
		}
		return len(ps) == 1 && ps[0].GetGrpcPort() == int32(g.grpcPort) && ps[0].GetClientPort() == 7777
	}, func() string { return fmt.Sprint("processes: ", e.processes("f1")) })

	c := ctx(t)
	gss, err := e.svc.CreateGameServerSession(c, &croupierv1.CreateGameServerSessionRequest{FleetId: "f1", MaxPlayers: 3, Name: "m",
		GameProperties: []*croupierv1.GameProperty{{Key: "k", Value: "v"}}, GameServerSessionData: "d"})
	mustNil(t, err, "create")
	id := gss.GetGameServerSessionId()
	e.waitSession(id, store.GSSActive)
	g.mu.Lock()
	got := g.sessions[0]
	g.mu.Unlock()
	if got.GetGameServerSessionId() != id || got.GetPort() != 7777 || got.GetIpAddress() != "127.0.0.1" || !got.GetJoinable() ||
		got.GetGameProperties()[0].GetValue() != "v" || got.GetGameServerSessionData() != "d" || got.GetFleetId() != "f1" {
		t.Fatalf("OnStartGameServerSession got %v", got)
	}

	ps, err := e.svc.JoinGameServerSessionBatch(c, &croupierv1.JoinGameServerSessionBatchRequest{GameServerSessionId: id,
		Players: []*croupierv1.PlayerJoin{{PlayerId: "a", PlayerData: "x"}, {PlayerId: "b"}, {PlayerId: "c"}}})
	mustNil(t, err, "join")
	_, err = e.svc.JoinGameServerSession(c, &croupierv1.JoinGameServerSessionRequest{GameServerSessionId: id, PlayerId: "d"})
	if fe := (*fleet.Error)(nil); err == nil || !asFleet(err, &fe) || fe.Code != fleet.CodeSessionFull {
		t.Fatalf("join a full session: %v", err)
	}
	accept := func(psID string, md context.Context) *grpcsdk.GseResponse {
		resp, err := g.gse.AcceptPlayerSession(md, &grpcsdk.AcceptPlayerSessionRequest{GameServerSessionId: id, PlayerSessionId: psID})
		mustNil(t, err, "accept")
		return resp
	}
	if r := accept(ps[0].GetPlayerSessionId(), g.md()); r.GetStatus() != grpcsdk.GseResponse_OK {
		t.Fatalf("accept: %v", r)
	}
	if r := accept("psess-unknown", g.md()); r.GetStatus() != grpcsdk.GseResponse_ERROR_400 || !strings.Contains(r.GetErrorMessage(), "does not exist") {
		t.Fatalf("accept unknown: %v", r)
	}
	// A retry with the same requestId gets the first answer, not "already ACTIVE".
	retry := metadata.AppendToOutgoingContext(ctx(t), "pid", strconv.Itoa(g.pid), "requestId", "same-request")
	if r := accept(ps[1].GetPlayerSessionId(), retry); r.GetStatus() != grpcsdk.GseResponse_OK {
		t.Fatalf("accept b: %v", r)
	}
	if r := accept(ps[1].GetPlayerSessionId(), retry); r.GetStatus() != grpcsdk.GseResponse_OK {
		t.Fatalf("retried accept b: %v", r)
	}
	if r := accept(ps[1].GetPlayerSessionId(), g.md()); r.GetStatus() != grpcsdk.GseResponse_ERROR_400 {
		t.Fatalf("accept b again with a new requestId: %v", r)
	}

	// DescribePlayerSessions through GSE, paged.
	var seen []string
	tok := ""
	for range 5 {
		res, err := g.gse.DescribePlayerSessions(g.md(), &grpcsdk.DescribePlayerSessionsRequest{GameServerSessionId: id, Limit: 2, NextToken: tok})
		mustNil(t, err, "describe")
		for _, p := range res.GetPlayerSessions() {
			seen = append(seen, p.GetPlayerId()+":"+p.GetStatus())
			if p.GetCreationTime() < time.Now().Add(-time.Hour).Unix() || p.GetCreationTime() > time.Now().Unix()+1 {
				t.Fatalf("creationTime %d is not Unix seconds", p.GetCreationTime())
			}
		}
		if tok = res.GetNextToken(); tok == "" {
			break
		}
	}
	slices.Sort(seen) // one batch: same creation time, ordered by id
	if fmt.Sprint(seen) != "[a:ACTIVE b:ACTIVE c:RESERVED]" {
		t.Fatalf("described %v", seen)
	}
	_, err = g.gse.DescribePlayerSessions(g.md(), &grpcsdk.DescribePlayerSessionsRequest{GameServerSessionId: id, PlayerSessionStatusFilter: "NOPE"})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad status filter: %v", err)
	}

	r, err := g.gse.RemovePlayerSession(g.md(), &grpcsdk.RemovePlayerSessionRequest{GameServerSessionId: id, PlayerSessionId: ps[0].GetPlayerSessionId()})
	mustNil(t, err, "remove")
	if r.GetStatus() != grpcsdk.GseResponse_OK {
		t.Fatalf("remove: %v", r)
	}
	r, _ = g.gse.UpdatePlayerSessionCreationPolicy(g.md(), &grpcsdk.UpdatePlayerSessionCreationPolicyRequest{GameServerSessionId: id, NewPlayerSessionCreationPolicy: "DENY_ALL"})
	if r.GetStatus() != grpcsdk.GseResponse_OK {
		t.Fatalf("deny all: %v", r)
	}
	_, err = e.svc.JoinGameServerSession(c, &croupierv1.JoinGameServerSessionRequest{GameServerSessionId: id, PlayerId: "d"})
	if fe := (*fleet.Error)(nil); !asFleet(err, &fe) || fe.Code != fleet.CodeCreationDenied {
		t.Fatalf("join with DENY_ALL: %v", err)
	}
	r, _ = g.gse.UpdatePlayerSessionCreationPolicy(g.md(), &grpcsdk.UpdatePlayerSessionCreationPolicyRequest{GameServerSessionId: id, NewPlayerSessionCreationPolicy: "MAYBE"})
	if r.GetStatus() != grpcsdk.GseResponse_ERROR_400 {
		t.Fatalf("bad policy: %v", r)
	}
	r, _ = g.gse.ReportCustomData(g.md(), &grpcsdk.ReportCustomDataRequest{CurrentCustomCount: 2, MaxCustomCount: 8})
	if r.GetStatus() != grpcsdk.GseResponse_OK {
		t.Fatalf("custom data: %v", r)
	}
	if s := e.session(id); s.GetCurrentCustomCount() != 2 || s.GetMaxCustomCount() != 8 {
		t.Fatalf("custom data not on the session: %v", s)
	}

	r, _ = g.gse.TerminateGameServerSession(g.md(), &grpcsdk.TerminateGameServerSessionRequest{GameServerSessionId: id})
	if r.GetStatus() != grpcsdk.GseResponse_OK {
		t.Fatalf("terminate: %v", r)
	}
	if s := e.session(id); s.GetStatus() != store.GSSTerminated {
		t.Fatalf("after TerminateGameServerSession: %v", s)
	}
	// The process hosts the next session.
	next, err := e.svc.CreateGameServerSession(c, &croupierv1.CreateGameServerSessionRequest{FleetId: "f1", MaxPlayers: 1})
	mustNil(t, err, "next session")
	if next.GetProcessId() != procID {
		t.Fatalf("next session on %s, want %s", next.GetProcessId(), procID)
	}
	e.waitSession(next.GetGameServerSessionId(), store.GSSActive)

	r, _ = g.gse.ProcessEnding(g.md(), &grpcsdk.ProcessEndingRequest{})
	if r.GetStatus() != grpcsdk.GseResponse_OK {
		t.Fatalf("ProcessEnding: %v", r)
	}
	eventually(t, 5*time.Second, func() bool { return len(e.liveProcesses("f1", store.ProcessTerminating)) == 1 },
		func() string { return fmt.Sprint(e.processes("f1")) })
	// It exits: TERMINATED (it said ProcessEnding), and its session ends.
	e.pids.kill(g.pid)
	eventually(t, 5*time.Second, func() bool { return len(e.liveProcesses("f1", store.ProcessTerminated)) == 1 },
		func() string { return fmt.Sprint(e.processes("f1")) })
	if s := e.waitSession(next.GetGameServerSessionId(), store.GSSTerminated); s.GetStatusReason() != fleet.ReasonProcessEnded {
		t.Fatalf("session of an ended process: %v", s)
	}
	resp, _ := g.gse.ReportCustomData(g.md(), &grpcsdk.ReportCustomDataRequest{})
	if resp.GetStatus() != grpcsdk.GseResponse_ERROR_400 {
		t.Fatalf("a call from an ended process: %v", resp)
	}
}

func asFleet(err error, fe **fleet.Error) bool {
	e, ok := err.(*fleet.Error)
	*fe = e
	return ok
}

// TestSelfRegisteredCrash: a process the agent did not launch registers
// itself; when it dies without ProcessEnding it is CRASHED and its session
// INTERRUPTED.
func TestSelfRegisteredCrash(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.fleet("f1")
	a := e.agent(e.config("a1"))
	g := e.fakeGame(a)
	g.ready()
	eventually(t, 5*time.Second, func() bool { return len(e.liveProcesses("f1", store.ProcessActive)) == 1 }, func() string { return "not ready" })
	gss, err := e.svc.CreateGameServerSession(ctx(t), &croupierv1.CreateGameServerSessionRequest{FleetId: "f1", MaxPlayers: 2})
	mustNil(t, err, "create")
	e.waitSession(gss.GetGameServerSessionId(), store.GSSActive)
	e.pids.kill(g.pid)
	s := e.waitSession(gss.GetGameServerSessionId(), store.GSSTerminated)
	if s.GetStatusReason() != fleet.ReasonInterrupted {
		t.Fatalf("reason %s", s.GetStatusReason())
	}
	if ps := e.liveProcesses("f1", store.ProcessCrashed); len(ps) != 1 || ps[0].GetStatusReason() != "EXITED" {
		t.Fatalf("processes %v", e.processes("f1"))
	}
}

// TestSelfRegistrationNeedsAFleet: with two fleets and no default, a
// process the agent did not launch is refused with a message saying what
// to configure.
func TestSelfRegistrationNeedsAFleet(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.fleet("f1")
	e.fleet("f2")
	a := e.agent(e.config("a1"))
	g := e.fakeGame(a)
	eventually(t, 5*time.Second, func() bool {
		resp, err := g.gse.ProcessReady(g.md(), &grpcsdk.ProcessReadyRequest{GrpcPort: int32(g.grpcPort)})
		return err == nil && resp.GetStatus() == grpcsdk.GseResponse_ERROR_400 && strings.Contains(resp.GetErrorMessage(), "hosts 2 fleets")
	}, func() string { return "ProcessReady was not refused for want of a default fleet" })
}
