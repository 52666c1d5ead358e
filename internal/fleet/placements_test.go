package fleet_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/fleet"
	"github.com/croupier/croupier/internal/store"
)

func TestPlacementQueue(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, h *harness) {
		c := ctx(t)
		h.fleet(t, "f1")
		start := func(id string, timeout int32) *croupierv1.GameServerSessionPlacement {
			t.Helper()
			p, err := h.svc.StartGameServerSessionPlacement(c, &croupierv1.StartGameServerSessionPlacementRequest{PlacementId: id, FleetId: "f1",
				MaxPlayers: 4, GameServerSessionName: "from " + id, TimeoutSeconds: timeout,
				GameProperties: []*croupierv1.GameProperty{{Key: "mode", Value: "duel"}}})
			mustNil(t, err, "start "+id)
			return p
		}
		// No capacity: both wait, in order.
		first, second := start("pl-1", 60), start("pl-2", 60)
		if first.GetStatus() != store.PlacementPending || second.GetStatus() != store.PlacementPending {
			t.Fatalf("placements %v %v", first, second)
		}
		if again := start("pl-1", 60); again.GetStatus() != store.PlacementPending || again.GetStartTimeMs() != first.GetStartTimeMs() {
			t.Fatalf("repeated id %v", again)
		}
		// The same id on another fleet is refused, and tells nothing of
		// the first fleet's placement.
		h.fleet(t, "f2")
		_, err := h.svc.StartGameServerSessionPlacement(c, &croupierv1.StartGameServerSessionPlacementRequest{PlacementId: "pl-1", FleetId: "f2",
			MaxPlayers: 4, TimeoutSeconds: 60})
		wantErr(t, err, codes.AlreadyExists, fleet.CodePlacementExists)
		if strings.Contains(err.Error(), "f1") {
			t.Fatalf("pl-1 on fleet f2: %v names the other fleet", err)
		}
		describe := func(id string) *croupierv1.GameServerSessionPlacement {
			p, err := h.svc.DescribeGameServerSessionPlacement(c, id)
			mustNil(t, err, "describe")
			return p
		}
		// A process becomes ready: the oldest placement gets it.
		h.processes(t, "f1", "a1", 1)
		eventually(t, 5*time.Second, func() bool { return describe("pl-1").GetStatus() == store.PlacementFulfilled },
			func() string { return "pl-1 not fulfilled: " + describe("pl-1").GetStatus() })
		p := describe("pl-1")
		if p.GetGameServerSessionId() == "" || p.GetPort() != 7000 || p.GetIpAddress() != "10.1.2.3" {
			t.Fatalf("fulfilled %v", p)
		}
		g := h.waitStatus(t, p.GetGameServerSessionId(), store.GSSActive)
		if g.GetName() != "from pl-1" || g.GetGameProperties()[0].GetValue() != "duel" || g.GetMaxPlayers() != 4 {
			t.Fatalf("session of the placement %v", g)
		}
		if describe("pl-2").GetStatus() != store.PlacementPending {
			t.Fatal("pl-2 fulfilled without capacity")
		}
		// Stop cancels a pending one; stopping again returns it unchanged.
		stopped, err := h.svc.StopGameServerSessionPlacement(c, "pl-2")
		mustNil(t, err, "stop")
		if stopped.GetStatus() != store.PlacementCancelled {
			t.Fatalf("stopped %v", stopped)
		}
		if again, _ := h.svc.StopGameServerSessionPlacement(c, "pl-1"); again.GetStatus() != store.PlacementFulfilled {
			t.Fatalf("stopping a fulfilled placement changed it: %v", again)
		}

		// The timeout ends a placement that never gets capacity.
		start("pl-3", 30)
		h.clock.Advance(31 * time.Second)
		eventually(t, 5*time.Second, func() bool { return describe("pl-3").GetStatus() == store.PlacementTimedOut },
			func() string { return "pl-3 is " + describe("pl-3").GetStatus() })
		if describe("pl-3").GetEndTimeMs() == 0 {
			t.Fatal("no end time")
		}

		// The session ending frees the process for the next placement.
		start("pl-4", 60)
		_, err = h.svc.TerminateGameServerSession(c, g.GetGameServerSessionId(), false)
		mustNil(t, err, "terminate")
		_, err = h.api.EndGameServerSession(c, &croupierv1.EndGameServerSessionRequest{AgentId: "a1", ProcessId: g.GetProcessId(), GameServerSessionId: g.GetGameServerSessionId()})
		mustNil(t, err, "end")
		// The process is TERMINATING (operator terminate), so pl-4 waits
		// for a new process.
		h.processes(t, "f1", "a2", 1)
		eventually(t, 5*time.Second, func() bool { return describe("pl-4").GetStatus() == store.PlacementFulfilled },
			func() string { return "pl-4 is " + describe("pl-4").GetStatus() })

		_, err = h.svc.DescribeGameServerSessionPlacement(c, "nope")
		wantErr(t, err, codes.NotFound, fleet.CodePlacementNotFound)
		for name, req := range map[string]*croupierv1.StartGameServerSessionPlacementRequest{
			"no id":       {FleetId: "f1"},
			"bad timeout": {PlacementId: "x", FleetId: "f1", TimeoutSeconds: 7200},
			"bad max":     {PlacementId: "x", FleetId: "f1", MaxPlayers: -2},
		} {
			_, err := h.svc.StartGameServerSessionPlacement(c, req)
			if err == nil {
				t.Fatalf("%s: accepted", name)
			}
			wantErr(t, err, codes.InvalidArgument, fleet.CodeInvalidArgument)
		}
	})
}

func TestPlacementQueueBound(t *testing.T) {
	t.Parallel()
	h := newHarness(t, store.DriverSQLite)
	svc, err := fleet.New(fleet.Config{Store: h.st, Agents: h.agents, Now: h.clock.Now, MaxPendingPerFleet: 2})
	mustNil(t, err, "new")
	defer svc.Close()
	c := ctx(t)
	h.fleet(t, "f1")
	for i, id := range []string{"a", "b", "c"} {
		_, err := svc.StartGameServerSessionPlacement(c, &croupierv1.StartGameServerSessionPlacementRequest{PlacementId: id, FleetId: "f1"})
		if i < 2 {
			mustNil(t, err, "start")
			continue
		}
		wantErr(t, err, codes.ResourceExhausted, fleet.CodePlacementQueueFull)
	}
}
