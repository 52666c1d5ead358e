package fleet_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/fleet"
	"github.com/croupier/croupier/internal/store"
)

func TestSessionLifecycle(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, h *harness) {
		c := ctx(t)
		h.fleet(t, "f1")
		procs := h.processes(t, "f1", "a1", 1)

		h.agents.mode.Store(startIgnore)
		g, err := h.svc.CreateGameServerSession(c, &croupierv1.CreateGameServerSessionRequest{FleetId: "f1", MaxPlayers: 2, Name: "match",
			GameProperties: []*croupierv1.GameProperty{{Key: "mode", Value: "brawl"}}, GameServerSessionData: "seed=7"})
		mustNil(t, err, "create")
		if g.GetStatus() != store.GSSActivating || g.GetProcessId() != procs[0] || g.GetPort() != 7000 || g.GetIpAddress() != "10.1.2.3" ||
			g.GetAgentId() != "a1" || g.GetPlayerSessionCreationPolicy() != store.PolicyAcceptAll {
			t.Fatalf("created %v", g)
		}
		// The process got the session with everything it needs.
		eventually(t, 5*time.Second, func() bool { h.agents.mu.Lock(); defer h.agents.mu.Unlock(); return len(h.agents.starts) == 1 },
			func() string { return "no OnStartGameServerSession" })
		start := h.agents.starts[0]
		if start.GetProcessId() != procs[0] || start.GetGameServerSession().GetGameServerSessionData() != "seed=7" ||
			start.GetGameServerSession().GetGameProperties()[0].GetValue() != "brawl" {
			t.Fatalf("start command %v", start)
		}
		_, err = h.svc.JoinGameServerSession(c, &croupierv1.JoinGameServerSessionRequest{GameServerSessionId: g.GetGameServerSessionId(), PlayerId: "p1"})
		wantErr(t, err, codes.FailedPrecondition, fleet.CodeSessionState)

		_, err = h.api.ActivateGameServerSession(c, &croupierv1.ActivateGameServerSessionRequest{AgentId: "a1", ProcessId: procs[0],
			GameServerSessionId: g.GetGameServerSessionId(), MaxPlayers: 2})
		mustNil(t, err, "activate")
		g = h.session(t, g.GetGameServerSessionId())
		if g.GetStatus() != store.GSSActive || g.GetActivationTimeMs() == 0 {
			t.Fatalf("activated %v", g)
		}

		ps, err := h.svc.JoinGameServerSession(c, &croupierv1.JoinGameServerSessionRequest{GameServerSessionId: g.GetGameServerSessionId(), PlayerId: "p1", PlayerData: "lvl 3"})
		mustNil(t, err, "join")
		if ps.GetStatus() != store.PlayerReserved || ps.GetPort() != 7000 || ps.GetIpAddress() != "10.1.2.3" || ps.GetPlayerData() != "lvl 3" {
			t.Fatalf("joined %v", ps)
		}
		_, err = h.api.AcceptPlayerSession(c, &croupierv1.AcceptPlayerSessionRequest{AgentId: "a1", ProcessId: procs[0],
			GameServerSessionId: g.GetGameServerSessionId(), PlayerSessionId: ps.GetPlayerSessionId()})
		mustNil(t, err, "accept")
		list, _, err := h.svc.DescribePlayerSessions(c, &croupierv1.DescribePlayerSessionsRequest{PlayerSessionId: ps.GetPlayerSessionId()})
		mustNil(t, err, "describe")
		if len(list) != 1 || list[0].GetStatus() != store.PlayerActive {
			t.Fatalf("after accept %v", list)
		}
		_, err = h.api.RemovePlayerSession(c, &croupierv1.RemovePlayerSessionRequest{AgentId: "a1", ProcessId: procs[0],
			GameServerSessionId: g.GetGameServerSessionId(), PlayerSessionId: ps.GetPlayerSessionId()})
		mustNil(t, err, "remove")
		list, _, _ = h.svc.DescribePlayerSessions(c, &croupierv1.DescribePlayerSessionsRequest{PlayerSessionId: ps.GetPlayerSessionId()})
		if list[0].GetStatus() != store.PlayerCompleted || list[0].GetTerminationTimeMs() == 0 {
			t.Fatalf("after remove %v", list)
		}

		_, err = h.api.ReportCustomData(c, &croupierv1.ReportCustomDataRequest{AgentId: "a1", ProcessId: procs[0], CurrentCustomCount: 4, MaxCustomCount: 9})
		mustNil(t, err, "custom data")
		if g = h.session(t, g.GetGameServerSessionId()); g.GetCurrentCustomCount() != 4 || g.GetMaxCustomCount() != 9 {
			t.Fatalf("custom data not on the session: %v", g)
		}

		// The process ends its session and can host the next one.
		_, err = h.api.EndGameServerSession(c, &croupierv1.EndGameServerSessionRequest{AgentId: "a1", ProcessId: procs[0], GameServerSessionId: g.GetGameServerSessionId()})
		mustNil(t, err, "end")
		g = h.session(t, g.GetGameServerSessionId())
		if g.GetStatus() != store.GSSTerminated || g.GetStatusReason() != fleet.ReasonTerminatedByProcess || g.GetTerminationTimeMs() == 0 {
			t.Fatalf("ended %v", g)
		}
		_, err = h.api.EndGameServerSession(c, &croupierv1.EndGameServerSessionRequest{AgentId: "a1", ProcessId: procs[0], GameServerSessionId: g.GetGameServerSessionId()})
		mustNil(t, err, "ending twice is a no-op")
		h.agents.mode.Store(startActivate)
		next, err := h.svc.CreateGameServerSession(c, &croupierv1.CreateGameServerSessionRequest{FleetId: "f1", MaxPlayers: 2})
		mustNil(t, err, "create on the freed process")
		if next.GetProcessId() != procs[0] {
			t.Fatalf("next session on %s", next.GetProcessId())
		}
		h.waitStatus(t, next.GetGameServerSessionId(), store.GSSActive)
	})
}

func TestCreateValidationAndIdempotency(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, h *harness) {
		c := ctx(t)
		h.fleet(t, "f1")
		h.processes(t, "f1", "a1", 2)
		create := func(r *croupierv1.CreateGameServerSessionRequest) (*croupierv1.GameServerSession, error) {
			r.FleetId = "f1"
			return h.svc.CreateGameServerSession(c, r)
		}
		many := make([]*croupierv1.GameProperty, 17)
		for i := range many {
			many[i] = &croupierv1.GameProperty{Key: string(rune('a' + i)), Value: "v"}
		}
		for name, r := range map[string]*croupierv1.CreateGameServerSessionRequest{
			"17 properties":  {GameProperties: many},
			"negative max":   {MaxPlayers: -1},
			"long key":       {GameProperties: []*croupierv1.GameProperty{{Key: string(make([]byte, 33)), Value: "v"}}},
			"duplicate key":  {GameProperties: []*croupierv1.GameProperty{{Key: "k"}, {Key: "k"}}},
			"bad custom id":  {GameServerSessionId: "has space"},
			"bad token":      {IdempotencyToken: "a/b"},
			"too much data":  {GameServerSessionData: string(make([]byte, 4097))},
			"empty prop key": {GameProperties: []*croupierv1.GameProperty{{Value: "v"}}},
		} {
			_, err := create(r)
			if err == nil {
				t.Fatalf("%s: accepted", name)
			}
			wantErr(t, err, codes.InvalidArgument, fleet.CodeInvalidArgument)
		}
		_, err := h.svc.CreateGameServerSession(c, &croupierv1.CreateGameServerSessionRequest{FleetId: "nope"})
		wantErr(t, err, codes.NotFound, fleet.CodeFleetNotFound)

		a, err := create(&croupierv1.CreateGameServerSessionRequest{IdempotencyToken: "tok-1", GameServerSessionId: "custom-1"})
		mustNil(t, err, "create with token")
		if a.GetGameServerSessionId() != "custom-1" {
			t.Fatalf("custom id not used: %v", a)
		}
		b, err := create(&croupierv1.CreateGameServerSessionRequest{IdempotencyToken: "tok-1"})
		mustNil(t, err, "repeat token")
		if b.GetGameServerSessionId() != "custom-1" {
			t.Fatalf("repeated token created %s", b.GetGameServerSessionId())
		}
		_, err = create(&croupierv1.CreateGameServerSessionRequest{GameServerSessionId: "custom-1"})
		wantErr(t, err, codes.AlreadyExists, fleet.CodeSessionExists)
		_, err = create(&croupierv1.CreateGameServerSessionRequest{})
		mustNil(t, err, "second process")
		_, err = create(&croupierv1.CreateGameServerSessionRequest{})
		wantErr(t, err, codes.ResourceExhausted, fleet.CodeNoCapacity)
	})
}

func TestActivationTimeout(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, h *harness) {
		c := ctx(t)
		h.fleet(t, "f1", func(f *croupierv1.Fleet) {
			f.RuntimeConfiguration = &croupierv1.RuntimeConfiguration{GameServerSessionActivationTimeoutSeconds: 5}
		})
		procs := h.processes(t, "f1", "a1", 1)
		h.agents.mode.Store(startIgnore)
		g, err := h.svc.CreateGameServerSession(c, &croupierv1.CreateGameServerSessionRequest{FleetId: "f1", MaxPlayers: 2})
		mustNil(t, err, "create")
		h.clock.Advance(4 * time.Second)
		if got := h.session(t, g.GetGameServerSessionId()); got.GetStatus() != store.GSSActivating {
			t.Fatalf("ended before its activation timeout: %v", got)
		}
		h.clock.Advance(2 * time.Second)
		g = h.waitStatus(t, g.GetGameServerSessionId(), store.GSSTerminated)
		if g.GetStatusReason() != fleet.ReasonActivationTimeout {
			t.Fatalf("reason %q", g.GetStatusReason())
		}
		// The process that did not activate in time is ended and hosts
		// nothing new.
		eventually(t, 5*time.Second, func() bool { return len(h.agents.terminated()) == 1 }, func() string { return "no terminate command" })
		if cmd := h.agents.terminated()[0]; cmd.GetProcessId() != procs[0] || cmd.GetReason() != fleet.ReasonActivationTimeout || cmd.GetForce() {
			t.Fatalf("terminate command %v", cmd)
		}
		eventually(t, 5*time.Second, func() bool {
			ps, _ := h.svc.ListProcesses(c, &croupierv1.ListProcessesRequest{FleetId: "f1"})
			return len(ps) == 1 && ps[0].GetStatus() == store.ProcessTerminating
		}, func() string { return "process not TERMINATING" })
		_, err = h.svc.CreateGameServerSession(c, &croupierv1.CreateGameServerSessionRequest{FleetId: "f1"})
		wantErr(t, err, codes.ResourceExhausted, fleet.CodeNoCapacity)
		// A late activation is refused.
		_, err = h.api.ActivateGameServerSession(c, &croupierv1.ActivateGameServerSessionRequest{AgentId: "a1", ProcessId: procs[0], GameServerSessionId: g.GetGameServerSessionId()})
		wantStatus(t, err, codes.FailedPrecondition)
	})
}

func TestActivationRefused(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, h *harness) {
		c := ctx(t)
		h.fleet(t, "f1")
		procs := h.processes(t, "f1", "a1", 1)
		for _, mode := range []int32{startRefuse, startFail} {
			h.agents.mode.Store(mode)
			g, err := h.svc.CreateGameServerSession(c, &croupierv1.CreateGameServerSessionRequest{FleetId: "f1"})
			mustNil(t, err, "create")
			g = h.waitStatus(t, g.GetGameServerSessionId(), store.GSSError)
			if g.GetStatusReason() != fleet.ReasonActivationFailed {
				t.Fatalf("reason %q", g.GetStatusReason())
			}
		}
		// The process answered, so it is free for the next session.
		h.agents.mode.Store(startActivate)
		g, err := h.svc.CreateGameServerSession(c, &croupierv1.CreateGameServerSessionRequest{FleetId: "f1"})
		mustNil(t, err, "create after refusals")
		if g.GetProcessId() != procs[0] {
			t.Fatalf("placed on %s", g.GetProcessId())
		}
		h.waitStatus(t, g.GetGameServerSessionId(), store.GSSActive)
	})
}

func TestTerminate(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, h *harness) {
		c := ctx(t)
		h.fleet(t, "f1")
		procs := h.processes(t, "f1", "a1", 2)
		a, err := h.svc.CreateGameServerSession(c, &croupierv1.CreateGameServerSessionRequest{FleetId: "f1", MaxPlayers: 4})
		mustNil(t, err, "create a")
		h.waitStatus(t, a.GetGameServerSessionId(), store.GSSActive)
		ps, err := h.svc.JoinGameServerSession(c, &croupierv1.JoinGameServerSessionRequest{GameServerSessionId: a.GetGameServerSessionId(), PlayerId: "p"})
		mustNil(t, err, "join")

		before := h.clock.Now()
		a, err = h.svc.TerminateGameServerSession(c, a.GetGameServerSessionId(), false)
		mustNil(t, err, "terminate")
		if a.GetStatus() != store.GSSTerminating || a.GetStatusReason() != fleet.ReasonTerminatedByUser {
			t.Fatalf("terminating %v", a)
		}
		eventually(t, 5*time.Second, func() bool { return len(h.agents.terminated()) == 1 }, func() string { return "no terminate command" })
		cmd := h.agents.terminated()[0]
		if cmd.GetProcessId() != procs[0] || cmd.GetForce() || cmd.GetTerminationTimeMs() != before.Add(fleet.DefaultTerminationGrace).UnixMilli() {
			t.Fatalf("terminate command %v", cmd)
		}
		_, err = h.svc.JoinGameServerSession(c, &croupierv1.JoinGameServerSessionRequest{GameServerSessionId: a.GetGameServerSessionId(), PlayerId: "q"})
		wantErr(t, err, codes.FailedPrecondition, fleet.CodeSessionState)
		// The process obeys: it ends the session and exits.
		_, err = h.api.EndGameServerSession(c, &croupierv1.EndGameServerSessionRequest{AgentId: "a1", ProcessId: procs[0], GameServerSessionId: a.GetGameServerSessionId()})
		mustNil(t, err, "end")
		a = h.session(t, a.GetGameServerSessionId())
		if a.GetStatus() != store.GSSTerminated {
			t.Fatalf("after the process ended it: %v", a)
		}
		players, _, _ := h.svc.DescribePlayerSessions(c, &croupierv1.DescribePlayerSessionsRequest{PlayerSessionId: ps.GetPlayerSessionId()})
		if players[0].GetStatus() != store.PlayerCompleted {
			t.Fatalf("player session %v", players[0])
		}

		b, err := h.svc.CreateGameServerSession(c, &croupierv1.CreateGameServerSessionRequest{FleetId: "f1"})
		mustNil(t, err, "create b")
		if b.GetProcessId() != procs[1] {
			t.Fatalf("b placed on %s; the terminating process must get no session", b.GetProcessId())
		}
		h.waitStatus(t, b.GetGameServerSessionId(), store.GSSActive)
		b, err = h.svc.TerminateGameServerSession(c, b.GetGameServerSessionId(), true)
		mustNil(t, err, "force terminate")
		if b.GetStatus() != store.GSSTerminated || b.GetStatusReason() != fleet.ReasonForceTerminated {
			t.Fatalf("force terminated %v", b)
		}
		eventually(t, 5*time.Second, func() bool { return len(h.agents.terminated()) == 2 }, func() string { return "no force command" })
		if cmd := h.agents.terminated()[1]; !cmd.GetForce() || cmd.GetProcessId() != procs[1] {
			t.Fatalf("force command %v", cmd)
		}
		again, err := h.svc.TerminateGameServerSession(c, b.GetGameServerSessionId(), false)
		mustNil(t, err, "terminate an ended session")
		if again.GetStatus() != store.GSSTerminated {
			t.Fatalf("terminating an ended session changed it: %v", again)
		}
		_, err = h.svc.TerminateGameServerSession(c, "nope", false)
		wantErr(t, err, codes.NotFound, fleet.CodeSessionNotFound)
	})
}

func TestProcessCrashEndsSession(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, h *harness) {
		c := ctx(t)
		h.fleet(t, "f1")
		procs := h.processes(t, "f1", "a1", 2)
		a, err := h.svc.CreateGameServerSession(c, &croupierv1.CreateGameServerSessionRequest{FleetId: "f1", MaxPlayers: 4})
		mustNil(t, err, "create a")
		b, err := h.svc.CreateGameServerSession(c, &croupierv1.CreateGameServerSessionRequest{FleetId: "f1", MaxPlayers: 4})
		mustNil(t, err, "create b")
		h.waitStatus(t, a.GetGameServerSessionId(), store.GSSActive)
		h.waitStatus(t, b.GetGameServerSessionId(), store.GSSActive)
		ps, err := h.svc.JoinGameServerSession(c, &croupierv1.JoinGameServerSessionRequest{GameServerSessionId: a.GetGameServerSessionId(), PlayerId: "p"})
		mustNil(t, err, "join")

		_, err = h.api.ReportProcesses(c, &croupierv1.ReportProcessesRequest{AgentId: "a1", Processes: []*croupierv1.Process{
			{ProcessId: procs[0], FleetId: "f1", GameId: "g", Env: "prod", Status: store.ProcessCrashed, StatusReason: "EXIT_CODE_2"},
		}})
		mustNil(t, err, "report crash")
		a = h.session(t, a.GetGameServerSessionId())
		if a.GetStatus() != store.GSSTerminated || a.GetStatusReason() != fleet.ReasonInterrupted {
			t.Fatalf("session of a crashed process: %v", a)
		}
		players, _, _ := h.svc.DescribePlayerSessions(c, &croupierv1.DescribePlayerSessionsRequest{PlayerSessionId: ps.GetPlayerSessionId()})
		if players[0].GetStatus() != store.PlayerCompleted {
			t.Fatalf("player of a crashed process: %v", players[0])
		}
		// A full snapshot without the second process: it ended unseen.
		_, err = h.api.ReportProcesses(c, &croupierv1.ReportProcessesRequest{AgentId: "a1", FullSnapshot: true})
		mustNil(t, err, "full snapshot")
		b = h.session(t, b.GetGameServerSessionId())
		if b.GetStatus() != store.GSSTerminated || b.GetStatusReason() != fleet.ReasonInterrupted {
			t.Fatalf("session of a lost process: %v", b)
		}
		ps2, err := h.svc.ListProcesses(c, &croupierv1.ListProcessesRequest{FleetId: "f1", Status: store.ProcessCrashed})
		mustNil(t, err, "list")
		if len(ps2) != 2 || ps2[1].GetStatusReason() != fleet.ReasonLost {
			t.Fatalf("processes %v", ps2)
		}
	})
}

func TestUpdateSession(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, h *harness) {
		c := ctx(t)
		h.fleet(t, "f1")
		h.processes(t, "f1", "a1", 1)
		g, err := h.svc.CreateGameServerSession(c, &croupierv1.CreateGameServerSessionRequest{FleetId: "f1", MaxPlayers: 3})
		mustNil(t, err, "create")
		id := g.GetGameServerSessionId()
		h.waitStatus(t, id, store.GSSActive)
		_, err = h.svc.JoinGameServerSessionBatch(c, &croupierv1.JoinGameServerSessionBatchRequest{GameServerSessionId: id,
			Players: []*croupierv1.PlayerJoin{{PlayerId: "a"}, {PlayerId: "b"}}})
		mustNil(t, err, "join")
		one, two, name, deny := int32(1), int32(2), "renamed", store.PolicyDenyAll
		_, err = h.svc.UpdateGameServerSession(c, &croupierv1.UpdateGameServerSessionRequest{GameServerSessionId: id, MaxPlayers: &one})
		wantErr(t, err, codes.FailedPrecondition, fleet.CodeSessionState)
		g, err = h.svc.UpdateGameServerSession(c, &croupierv1.UpdateGameServerSessionRequest{GameServerSessionId: id, MaxPlayers: &two, Name: &name, PlayerSessionCreationPolicy: &deny})
		mustNil(t, err, "update")
		if g.GetMaxPlayers() != 2 || g.GetName() != "renamed" || g.GetPlayerSessionCreationPolicy() != store.PolicyDenyAll {
			t.Fatalf("updated %v", g)
		}
		_, err = h.svc.UpdateGameServerSession(c, &croupierv1.UpdateGameServerSessionRequest{GameServerSessionId: id})
		wantErr(t, err, codes.InvalidArgument, fleet.CodeInvalidArgument)
		bad := "SOMETIMES"
		_, err = h.svc.UpdateGameServerSession(c, &croupierv1.UpdateGameServerSessionRequest{GameServerSessionId: id, PlayerSessionCreationPolicy: &bad})
		wantErr(t, err, codes.InvalidArgument, fleet.CodeInvalidArgument)
	})
}

func TestDescribeGameServerSessions(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, h *harness) {
		c := ctx(t)
		h.fleet(t, "f1")
		h.processes(t, "f1", "a1", 5)
		h.agents.mode.Store(startIgnore)
		var ids []string
		for range 5 {
			g, err := h.svc.CreateGameServerSession(c, &croupierv1.CreateGameServerSessionRequest{FleetId: "f1"})
			mustNil(t, err, "create")
			ids = append(ids, g.GetGameServerSessionId())
			h.clock.Advance(time.Millisecond)
		}
		var got []string
		tok := ""
		for range 10 {
			page, next, err := h.svc.DescribeGameServerSessions(c, &croupierv1.DescribeGameServerSessionsRequest{FleetId: "f1", Limit: 2, NextToken: tok})
			mustNil(t, err, "describe")
			for _, g := range page {
				got = append(got, g.GetGameServerSessionId())
			}
			if tok = next; tok == "" {
				break
			}
		}
		if len(got) != 5 || got[0] != ids[4] || got[4] != ids[0] {
			t.Fatalf("paged %v, want newest first of %v", got, ids)
		}
		_, _, err := h.svc.DescribeGameServerSessions(c, &croupierv1.DescribeGameServerSessionsRequest{FleetId: "f1", StatusFilter: "DONE"})
		wantErr(t, err, codes.InvalidArgument, fleet.CodeInvalidArgument)
		_, _, err = h.svc.DescribeGameServerSessions(c, &croupierv1.DescribeGameServerSessionsRequest{FleetId: "f1", Limit: 101})
		wantErr(t, err, codes.InvalidArgument, fleet.CodeInvalidArgument)
		act, _, err := h.svc.DescribeGameServerSessions(c, &croupierv1.DescribeGameServerSessionsRequest{FleetId: "f1", StatusFilter: store.GSSActive})
		mustNil(t, err, "by status")
		if len(act) != 0 {
			t.Fatalf("%d ACTIVE sessions, want none", len(act))
		}
	})
}
