package fleet_test

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/fleet"
	"github.com/croupier/croupier/internal/store"
)

// activeSession creates fleet f1 with one process of agent a1 and an
// ACTIVE session of maxPlayers on it.
func (h *harness) activeSession(t *testing.T, maxPlayers int32, mods ...func(*croupierv1.Fleet)) (gssID, procID string) {
	t.Helper()
	h.fleet(t, "f1", mods...)
	procID = h.processes(t, "f1", "a1", 1)[0]
	g, err := h.svc.CreateGameServerSession(ctx(t), &croupierv1.CreateGameServerSessionRequest{FleetId: "f1", MaxPlayers: maxPlayers})
	mustNil(t, err, "create")
	h.waitStatus(t, g.GetGameServerSessionId(), store.GSSActive)
	return g.GetGameServerSessionId(), procID
}

func players(ids ...string) []*croupierv1.PlayerJoin {
	out := make([]*croupierv1.PlayerJoin, len(ids))
	for i, id := range ids {
		out[i] = &croupierv1.PlayerJoin{PlayerId: id, PlayerData: "d-" + id}
	}
	return out
}

func TestJoinRefusedWhenFullOrDenied(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, h *harness) {
		c := ctx(t)
		id, proc := h.activeSession(t, 3)
		batch := func(ids ...string) ([]*croupierv1.PlayerSession, error) {
			return h.svc.JoinGameServerSessionBatch(c, &croupierv1.JoinGameServerSessionBatchRequest{GameServerSessionId: id, Players: players(ids...)})
		}
		_, err := batch("a", "b", "c", "d")
		e := wantErr(t, err, codes.FailedPrecondition, fleet.CodeSessionFull)
		if e.Details["max_players"] != "3" || e.Details["players"] != "0" {
			t.Fatalf("details %v", e.Details)
		}
		got, err := batch("a", "b")
		mustNil(t, err, "join two")
		if len(got) != 2 || got[1].GetPlayerData() != "d-b" || got[0].GetPlayerSessionId() == got[1].GetPlayerSessionId() {
			t.Fatalf("joined %v", got)
		}
		_, err = batch("b")
		wantErr(t, err, codes.AlreadyExists, fleet.CodePlayerSeated)
		_, err = batch("c")
		mustNil(t, err, "fill the last seat")
		_, err = h.svc.JoinGameServerSession(c, &croupierv1.JoinGameServerSessionRequest{GameServerSessionId: id, PlayerId: "d"})
		wantErr(t, err, codes.FailedPrecondition, fleet.CodeSessionFull)

		// Removing a player frees a seat; DENY_ALL (set by the process)
		// closes the session anyway.
		_, err = h.api.RemovePlayerSession(c, &croupierv1.RemovePlayerSessionRequest{AgentId: "a1", ProcessId: proc, GameServerSessionId: id, PlayerSessionId: got[0].GetPlayerSessionId()})
		mustNil(t, err, "remove")
		_, err = h.api.UpdatePlayerSessionCreationPolicy(c, &croupierv1.UpdatePlayerSessionCreationPolicyRequest{AgentId: "a1", ProcessId: proc, GameServerSessionId: id, NewPlayerSessionCreationPolicy: store.PolicyDenyAll})
		mustNil(t, err, "deny all")
		_, err = h.svc.JoinGameServerSession(c, &croupierv1.JoinGameServerSessionRequest{GameServerSessionId: id, PlayerId: "d"})
		wantErr(t, err, codes.FailedPrecondition, fleet.CodeCreationDenied)
		_, err = h.api.UpdatePlayerSessionCreationPolicy(c, &croupierv1.UpdatePlayerSessionCreationPolicyRequest{AgentId: "a1", ProcessId: proc, GameServerSessionId: id, NewPlayerSessionCreationPolicy: store.PolicyAcceptAll})
		mustNil(t, err, "accept all")
		_, err = h.svc.JoinGameServerSession(c, &croupierv1.JoinGameServerSessionRequest{GameServerSessionId: id, PlayerId: "d"})
		mustNil(t, err, "join after ACCEPT_ALL")
		_, err = h.api.UpdatePlayerSessionCreationPolicy(c, &croupierv1.UpdatePlayerSessionCreationPolicyRequest{AgentId: "a1", ProcessId: proc, GameServerSessionId: id, NewPlayerSessionCreationPolicy: "MAYBE"})
		wantStatus(t, err, codes.InvalidArgument)

		for name, req := range map[string]*croupierv1.JoinGameServerSessionBatchRequest{
			"26 players":   {GameServerSessionId: id, Players: players(manyIDs(26)...)},
			"no players":   {GameServerSessionId: id},
			"twice":        {GameServerSessionId: id, Players: players("x", "x")},
			"no player id": {GameServerSessionId: id, Players: []*croupierv1.PlayerJoin{{}}},
			"no session":   {Players: players("x")},
			"huge data":    {GameServerSessionId: id, Players: []*croupierv1.PlayerJoin{{PlayerId: "x", PlayerData: string(make([]byte, 2049))}}},
		} {
			_, err := h.svc.JoinGameServerSessionBatch(c, req)
			if err == nil {
				t.Fatalf("%s: accepted", name)
			}
			wantErr(t, err, codes.InvalidArgument, fleet.CodeInvalidArgument)
		}
		_, err = h.svc.JoinGameServerSession(c, &croupierv1.JoinGameServerSessionRequest{GameServerSessionId: "nope", PlayerId: "x"})
		wantErr(t, err, codes.NotFound, fleet.CodeSessionNotFound)
	})
}

func manyIDs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprint("p", i)
	}
	return out
}

func TestReservationTimeoutFreesSeat(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, h *harness) {
		c := ctx(t)
		id, proc := h.activeSession(t, 1, func(f *croupierv1.Fleet) { f.PlayerSessionReservationTimeoutSeconds = 10 })
		ps, err := h.svc.JoinGameServerSession(c, &croupierv1.JoinGameServerSessionRequest{GameServerSessionId: id, PlayerId: "late"})
		mustNil(t, err, "join")
		_, err = h.svc.JoinGameServerSession(c, &croupierv1.JoinGameServerSessionRequest{GameServerSessionId: id, PlayerId: "other"})
		wantErr(t, err, codes.FailedPrecondition, fleet.CodeSessionFull)
		h.clock.Advance(11 * time.Second)
		eventually(t, 5*time.Second, func() bool {
			l, _, _ := h.svc.DescribePlayerSessions(c, &croupierv1.DescribePlayerSessionsRequest{PlayerSessionId: ps.GetPlayerSessionId()})
			return len(l) == 1 && l[0].GetStatus() == store.PlayerTimedOut
		}, func() string { return "reservation did not time out" })
		if g := h.session(t, id); g.GetCurrentPlayerSessionCount() != 0 {
			t.Fatalf("seat not freed: %v", g)
		}
		_, err = h.api.AcceptPlayerSession(c, &croupierv1.AcceptPlayerSessionRequest{AgentId: "a1", ProcessId: proc, GameServerSessionId: id, PlayerSessionId: ps.GetPlayerSessionId()})
		wantStatus(t, err, codes.FailedPrecondition)
		_, err = h.svc.JoinGameServerSession(c, &croupierv1.JoinGameServerSessionRequest{GameServerSessionId: id, PlayerId: "other"})
		mustNil(t, err, "join after the timeout")
	})
}

func TestAcceptValidation(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, h *harness) {
		c := ctx(t)
		id, proc := h.activeSession(t, 4)
		other := h.processes(t, "f1", "a1", 2)[1]
		o, err := h.svc.CreateGameServerSession(c, &croupierv1.CreateGameServerSessionRequest{FleetId: "f1", MaxPlayers: 4})
		mustNil(t, err, "create other")
		h.waitStatus(t, o.GetGameServerSessionId(), store.GSSActive)
		mine, err := h.svc.JoinGameServerSession(c, &croupierv1.JoinGameServerSessionRequest{GameServerSessionId: id, PlayerId: "p"})
		mustNil(t, err, "join")
		foreign, err := h.svc.JoinGameServerSession(c, &croupierv1.JoinGameServerSessionRequest{GameServerSessionId: o.GetGameServerSessionId(), PlayerId: "p"})
		mustNil(t, err, "join other")
		accept := func(agent, process, gss, ps string) error {
			_, err := h.api.AcceptPlayerSession(c, &croupierv1.AcceptPlayerSessionRequest{AgentId: agent, ProcessId: process, GameServerSessionId: gss, PlayerSessionId: ps})
			return err
		}
		wantStatus(t, accept("a1", proc, id, "psess-unknown"), codes.NotFound)
		wantStatus(t, accept("a1", proc, id, foreign.GetPlayerSessionId()), codes.PermissionDenied)
		wantStatus(t, accept("a1", other, id, mine.GetPlayerSessionId()), codes.PermissionDenied)
		wantStatus(t, accept("a2", proc, id, mine.GetPlayerSessionId()), codes.PermissionDenied)
		wantStatus(t, accept("a1", "no-such-process", id, mine.GetPlayerSessionId()), codes.NotFound)
		wantStatus(t, accept("a1", proc, "", mine.GetPlayerSessionId()), codes.InvalidArgument)
		mustNil(t, accept("a1", proc, id, mine.GetPlayerSessionId()), "accept")
		wantStatus(t, accept("a1", proc, id, mine.GetPlayerSessionId()), codes.FailedPrecondition)

		_, err = h.api.ActivateGameServerSession(c, &croupierv1.ActivateGameServerSessionRequest{AgentId: "a1", ProcessId: other, GameServerSessionId: id})
		wantStatus(t, err, codes.PermissionDenied)
		_, err = h.api.EndGameServerSession(c, &croupierv1.EndGameServerSessionRequest{AgentId: "a1", ProcessId: other, GameServerSessionId: id})
		wantStatus(t, err, codes.PermissionDenied)
		_, err = h.api.ReportCustomData(c, &croupierv1.ReportCustomDataRequest{AgentId: "a1", ProcessId: proc, CurrentCustomCount: -1})
		wantStatus(t, err, codes.InvalidArgument)
	})
}

func TestDescribePlayerSessionsPaging(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, h *harness) {
		c := ctx(t)
		id, proc := h.activeSession(t, 20)
		var ids []string
		for i := range 7 {
			ps, err := h.svc.JoinGameServerSession(c, &croupierv1.JoinGameServerSessionRequest{GameServerSessionId: id, PlayerId: fmt.Sprint("p", i)})
			mustNil(t, err, "join")
			ids = append(ids, ps.GetPlayerSessionId())
			h.clock.Advance(time.Millisecond)
		}
		for _, ps := range ids[:3] {
			_, err := h.api.AcceptPlayerSession(c, &croupierv1.AcceptPlayerSessionRequest{AgentId: "a1", ProcessId: proc, GameServerSessionId: id, PlayerSessionId: ps})
			mustNil(t, err, "accept")
		}
		collect := func(req *croupierv1.DescribePlayerSessionsRequest) []string {
			var out []string
			for range 20 {
				page, next, err := h.svc.DescribePlayerSessions(c, req)
				mustNil(t, err, "describe")
				if len(page) > int(req.GetLimit()) {
					t.Fatalf("page of %d, limit %d", len(page), req.GetLimit())
				}
				for _, p := range page {
					out = append(out, p.GetPlayerSessionId())
				}
				if next == "" {
					return out
				}
				req.NextToken = next
			}
			t.Fatal("paging does not end")
			return nil
		}
		if got := collect(&croupierv1.DescribePlayerSessionsRequest{GameServerSessionId: id, Limit: 3}); fmt.Sprint(got) != fmt.Sprint(ids) {
			t.Fatalf("all = %v, want %v", got, ids)
		}
		if got := collect(&croupierv1.DescribePlayerSessionsRequest{GameServerSessionId: id, PlayerSessionStatusFilter: store.PlayerActive, Limit: 2}); fmt.Sprint(got) != fmt.Sprint(ids[:3]) {
			t.Fatalf("active = %v", got)
		}
		if got := collect(&croupierv1.DescribePlayerSessionsRequest{PlayerId: "p5", Limit: 1}); fmt.Sprint(got) != fmt.Sprint(ids[5:6]) {
			t.Fatalf("by player = %v", got)
		}
		// The process's DescribePlayerSessions, as GSE pages it.
		res, err := h.api.DescribeProcessPlayerSessions(c, &croupierv1.DescribeProcessPlayerSessionsRequest{AgentId: "a1", ProcessId: proc,
			GameServerSessionId: id, PlayerSessionStatusFilter: store.PlayerReserved, Limit: 3})
		mustNil(t, err, "process describe")
		if len(res.GetPlayerSessions()) != 3 || res.GetNextToken() == "" {
			t.Fatalf("process page %v", res)
		}
		for name, req := range map[string]*croupierv1.DescribePlayerSessionsRequest{
			"no selector": {},
			"bad status":  {GameServerSessionId: id, PlayerSessionStatusFilter: "GONE"},
			"bad limit":   {GameServerSessionId: id, Limit: 1000},
			"bad token":   {GameServerSessionId: id, NextToken: "garbage!"},
		} {
			_, _, err := h.svc.DescribePlayerSessions(c, req)
			if err == nil {
				t.Fatalf("%s: accepted", name)
			}
			wantErr(t, err, codes.InvalidArgument, fleet.CodeInvalidArgument)
		}
	})
}
