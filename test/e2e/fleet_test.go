package e2e

import (
	"context"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestFleetEndToEnd runs the fleet plane through real processes: the agent
// launches and supervises examples/gsegame (a game server that speaks only
// the raw GSE protos), the server places sessions and players on them.
func TestFleetEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	c := newCluster(t)
	ctx := context.Background()
	fl := croupierv1.NewFleetServiceClient(c.conn)
	f, err := fl.CreateFleet(ctx, &croupierv1.CreateFleetRequest{Fleet: &croupierv1.Fleet{
		GameId: "demo", Env: "dev", Name: "e2e", PlayerSessionReservationTimeoutSeconds: 2,
		AgentSelector: map[string]string{"transport": "grpc"}, // agent-a
		RuntimeConfiguration: &croupierv1.RuntimeConfiguration{
			ServerProcesses: []*croupierv1.ServerProcess{{LaunchPath: bins.gsegame, ConcurrentExecutions: 2}},
			GameServerSessionActivationTimeoutSeconds: 30,
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	fleetID := f.GetFleet().GetFleetId()
	// The game processes outlive the agent by design; the harness kills
	// them with the agent's cleanup (they carry its marker).
	active := func() []*croupierv1.Process {
		r, err := fl.ListProcesses(ctx, &croupierv1.ListProcessesRequest{FleetId: fleetID, Status: "ACTIVE"})
		if err != nil {
			return nil
		}
		return r.GetProcesses()
	}
	waitFor(t, 30*time.Second, "two ACTIVE processes", func() bool { return len(active()) == 2 })

	var sid string
	t.Run("session ACTIVATING to ACTIVE via the game's ActivateGameServerSession", func(t *testing.T) {
		r, err := fl.CreateGameServerSession(ctx, &croupierv1.CreateGameServerSessionRequest{FleetId: fleetID, MaxPlayers: 2, Name: "duel-1",
			GameProperties: []*croupierv1.GameProperty{{Key: "mode", Value: "duel"}}, IdempotencyToken: "tok-1"})
		if err != nil {
			t.Fatal(err)
		}
		sid = r.GetGameServerSession().GetGameServerSessionId()
		again, err := fl.CreateGameServerSession(ctx, &croupierv1.CreateGameServerSessionRequest{FleetId: fleetID, MaxPlayers: 2, Name: "duel-1", IdempotencyToken: "tok-1"})
		if err != nil || again.GetGameServerSession().GetGameServerSessionId() != sid {
			t.Fatalf("idempotency token: %v %v", again, err)
		}
		waitFor(t, 15*time.Second, "session ACTIVE", func() bool {
			g, err := fl.GetGameServerSession(ctx, &croupierv1.GetGameServerSessionRequest{GameServerSessionId: sid})
			return err == nil && g.GetGameServerSession().GetStatus() == "ACTIVE"
		})
	})

	t.Run("joins fill the session; a full session refuses", func(t *testing.T) {
		for _, p := range []string{"p1", "p2"} {
			r, err := fl.JoinGameServerSession(ctx, &croupierv1.JoinGameServerSessionRequest{GameServerSessionId: sid, PlayerId: p, PlayerData: "lvl=3"})
			if err != nil || r.GetPlayerSession().GetStatus() != "RESERVED" || r.GetPlayerSession().GetPort() == 0 {
				t.Fatalf("join %s: %v %v", p, r, err)
			}
		}
		if _, err := fl.JoinGameServerSession(ctx, &croupierv1.JoinGameServerSessionRequest{GameServerSessionId: sid, PlayerId: "p3"}); err == nil {
			t.Fatal("a full session accepted a third player")
		}
	})

	t.Run("search with the GSE filter grammar", func(t *testing.T) {
		r, err := fl.SearchGameServerSessions(ctx, &croupierv1.SearchGameServerSessionsRequest{FleetId: fleetID,
			FilterExpression: "gameServerSessionProperties.mode = 'duel' AND playerSessionCount = 2", SortExpression: "creationTimeMillis DESC"})
		if err != nil || len(r.GetGameServerSessions()) != 1 {
			t.Fatalf("search: %v %v", r, err)
		}
		_, err = fl.SearchGameServerSessions(ctx, &croupierv1.SearchGameServerSessionsRequest{FleetId: fleetID, FilterExpression: "playerSessionCount >> 1"})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "offset 19") {
			t.Fatalf("bad filter: %v", err)
		}
	})

	t.Run("reservations time out and free their slots", func(t *testing.T) {
		waitFor(t, 15*time.Second, "RESERVED player sessions to time out", func() bool {
			r, err := fl.DescribePlayerSessions(ctx, &croupierv1.DescribePlayerSessionsRequest{GameServerSessionId: sid, PlayerSessionStatusFilter: "TIMEDOUT"})
			return err == nil && len(r.GetPlayerSessions()) == 2
		})
		if _, err := fl.JoinGameServerSession(ctx, &croupierv1.JoinGameServerSessionRequest{GameServerSessionId: sid, PlayerId: "p3"}); err != nil {
			t.Fatalf("join after the slots were freed: %v", err)
		}
	})

	t.Run("terminate frees the process for a new session", func(t *testing.T) {
		if _, err := fl.TerminateGameServerSession(ctx, &croupierv1.TerminateGameServerSessionRequest{GameServerSessionId: sid}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 15*time.Second, "session TERMINATED", func() bool {
			g, err := fl.GetGameServerSession(ctx, &croupierv1.GetGameServerSessionRequest{GameServerSessionId: sid})
			return err == nil && g.GetGameServerSession().GetStatus() == "TERMINATED"
		})
		waitFor(t, 30*time.Second, "two ACTIVE processes again", func() bool { return len(active()) == 2 })
		for i := 0; i < 2; i++ {
			r, err := fl.CreateGameServerSession(ctx, &croupierv1.CreateGameServerSessionRequest{FleetId: fleetID, MaxPlayers: 4})
			if err != nil {
				t.Fatalf("session %d after terminate: %v", i, err)
			}
			id := r.GetGameServerSession().GetGameServerSessionId()
			waitFor(t, 15*time.Second, "new session ACTIVE", func() bool {
				g, err := fl.GetGameServerSession(ctx, &croupierv1.GetGameServerSessionRequest{GameServerSessionId: id})
				return err == nil && g.GetGameServerSession().GetStatus() == "ACTIVE"
			})
		}
	})

	t.Run("an agent on the long-poll transport runs a fleet too", func(t *testing.T) {
		lf, err := fl.CreateFleet(ctx, &croupierv1.CreateFleetRequest{Fleet: &croupierv1.Fleet{
			GameId: "demo", Env: "dev", Name: "e2e-longpoll", AgentSelector: map[string]string{"transport": "longpoll"},
			RuntimeConfiguration: &croupierv1.RuntimeConfiguration{
				ServerProcesses: []*croupierv1.ServerProcess{{LaunchPath: bins.gsegame, ConcurrentExecutions: 1}},
			},
		}})
		if err != nil {
			t.Fatal(err)
		}
		id := lf.GetFleet().GetFleetId()
		t.Cleanup(func() {
			if r, err := fl.ListProcesses(context.Background(), &croupierv1.ListProcessesRequest{FleetId: id}); err == nil {
				for _, p := range r.GetProcesses() {
					_ = syscall.Kill(int(p.GetPid()), syscall.SIGKILL)
				}
			}
		})
		waitFor(t, 30*time.Second, "agent-b's process ACTIVE", func() bool {
			r, err := fl.ListProcesses(ctx, &croupierv1.ListProcessesRequest{FleetId: id, Status: "ACTIVE"})
			return err == nil && len(r.GetProcesses()) == 1 && r.GetProcesses()[0].GetAgentId() == "agent-b"
		})
		r, err := fl.CreateGameServerSession(ctx, &croupierv1.CreateGameServerSessionRequest{FleetId: id, MaxPlayers: 2})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, 15*time.Second, "the long-poll agent's session ACTIVE", func() bool {
			g, err := fl.GetGameServerSession(ctx, &croupierv1.GetGameServerSessionRequest{GameServerSessionId: r.GetGameServerSession().GetGameServerSessionId()})
			return err == nil && g.GetGameServerSession().GetStatus() == "ACTIVE"
		})
	})

	t.Run("fleet calls are authorised on the fleet's game", func(t *testing.T) {
		users := croupierv1.NewUserServiceClient(c.conn)
		for _, u := range []struct{ name, scope string }{{"dora", "game:demo/*"}, {"oscar", "game:other/*"}} {
			if _, err := users.CreateUser(ctx, &croupierv1.CreateUserRequest{Username: u.name, Password: u.name + "-password"}); err != nil {
				t.Fatal(err)
			}
			if _, err := users.GrantRole(ctx, &croupierv1.GrantRoleRequest{Username: u.name, Role: "operator", Scope: u.scope}); err != nil {
				t.Fatal(err)
			}
		}
		tc := tokenConn(t, c)
		login := func(name string) context.Context {
			r, err := croupierv1.NewAuthServiceClient(tc).Login(ctx, &croupierv1.LoginRequest{Username: name, Password: name + "-password"})
			if err != nil {
				t.Fatal(err)
			}
			return bearer(r.GetAccessToken())
		}
		tfl := croupierv1.NewFleetServiceClient(tc)
		_, err := tfl.ListProcesses(login("oscar"), &croupierv1.ListProcessesRequest{FleetId: fleetID})
		// Refused naming the fleet, not its game: an id tells nobody without
		// access what exists, or where.
		if msg := status.Convert(err).Message(); status.Code(err) != codes.PermissionDenied || !strings.Contains(msg, "fleet "+fleetID) || strings.Contains(msg, "demo") {
			t.Fatalf("operator of game other listing the demo fleet: %v", err)
		}
		if _, err := tfl.ListProcesses(login("dora"), &croupierv1.ListProcessesRequest{FleetId: fleetID}); err != nil {
			t.Fatalf("operator of game demo listing the demo fleet: %v", err)
		}
		if _, err := tfl.GetFleet(login("dora"), &croupierv1.GetFleetRequest{FleetId: "no-such-fleet"}); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("a game-scoped operator asking for an unknown fleet id: %v", err)
		}
	})

	t.Run("a crashed process is recorded and restarted", func(t *testing.T) {
		procs := active()
		victim := procs[0]
		if err := syscall.Kill(int(victim.GetPid()), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 30*time.Second, "the crash recorded and a replacement ACTIVE", func() bool {
			r, err := fl.ListProcesses(ctx, &croupierv1.ListProcessesRequest{FleetId: fleetID})
			if err != nil {
				return false
			}
			crashed, pids := false, []int32{}
			for _, p := range r.GetProcesses() {
				if p.GetProcessId() == victim.GetProcessId() && p.GetStatus() == "CRASHED" {
					crashed = true
				}
				if p.GetStatus() == "ACTIVE" {
					pids = append(pids, p.GetPid())
				}
			}
			return crashed && len(pids) == 2 && !slices.Contains(pids, victim.GetPid())
		})
	})

	t.Run("a restarted agent adopts its live processes", func(t *testing.T) {
		before := active()
		sdk := c.sdk["agent-a"]
		c.agents["agent-a"].stop()
		c.startAgent("agent-a", "grpc", sdk)
		c.agents["agent-a"].waitLog("adopted a running game process", 15*time.Second)
		pids := func(ps []*croupierv1.Process) []int32 {
			var out []int32
			for _, p := range ps {
				out = append(out, p.GetPid())
			}
			slices.Sort(out)
			return out
		}
		pb := pids(before)
		// Polled, not slept on: the new agent's report reaches the server
		// when it does. An agent that did not adopt launches new processes,
		// and the set never matches.
		var pa []int32
		deadline := time.Now().Add(15 * time.Second)
		for pa = pids(active()); !slices.Equal(pb, pa); pa = pids(active()) {
			if time.Now().After(deadline) {
				t.Fatalf("ACTIVE processes before the agent restart %v, after %v: not adopted", pb, pa)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}
