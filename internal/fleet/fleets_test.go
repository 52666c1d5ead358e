package fleet_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/fleet"
	"github.com/croupier/croupier/internal/store"
)

func TestFleetCRUD(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, h *harness) {
		c := ctx(t)
		f, err := h.svc.CreateFleet(c, &croupierv1.Fleet{GameId: "g", Env: "prod", Name: "eu",
			RuntimeConfiguration: &croupierv1.RuntimeConfiguration{ServerProcesses: []*croupierv1.ServerProcess{{LaunchPath: "/bin/game", ConcurrentExecutions: 2}}},
			AgentSelector:        map[string]string{"region": "eu"}})
		mustNil(t, err, "create")
		if f.GetFleetId() == "" || f.GetProtectionPolicy() != fleet.NoProtection || f.GetPlayerSessionReservationTimeoutSeconds() != 60 ||
			f.GetRuntimeConfiguration().GetGameServerSessionActivationTimeoutSeconds() != 600 || f.GetVersion() != 1 {
			t.Fatalf("defaults not applied: %v", f)
		}
		if h.agents.syncs != 1 {
			t.Fatalf("agents told %d times about the new fleet", h.agents.syncs)
		}
		for name, bad := range map[string]*croupierv1.Fleet{
			"bad policy":            {GameId: "g", Env: "prod", ProtectionPolicy: "Sometimes"},
			"time limit 0":          {GameId: "g", Env: "prod", ProtectionPolicy: fleet.TimeLimitProtection},
			"no launch path":        {GameId: "g", Env: "prod", RuntimeConfiguration: &croupierv1.RuntimeConfiguration{ServerProcesses: []*croupierv1.ServerProcess{{ConcurrentExecutions: 1}}}},
			"0 executions":          {GameId: "g", Env: "prod", RuntimeConfiguration: &croupierv1.RuntimeConfiguration{ServerProcesses: []*croupierv1.ServerProcess{{LaunchPath: "/bin/game"}}}},
			"51 processes":          {GameId: "g", Env: "prod", RuntimeConfiguration: &croupierv1.RuntimeConfiguration{ServerProcesses: []*croupierv1.ServerProcess{{LaunchPath: "/bin/game", ConcurrentExecutions: 51}}}},
			"bad env name":          {GameId: "g", Env: "prod", RuntimeConfiguration: &croupierv1.RuntimeConfiguration{ServerProcesses: []*croupierv1.ServerProcess{{LaunchPath: "/bin/game", ConcurrentExecutions: 1, Environment: map[string]string{"1X": ""}}}}},
			"relative launch path":  {GameId: "g", Env: "prod", RuntimeConfiguration: &croupierv1.RuntimeConfiguration{ServerProcesses: []*croupierv1.ServerProcess{{LaunchPath: "sh", ConcurrentExecutions: 1}}}},
			"dot-dot launch path":   {GameId: "g", Env: "prod", RuntimeConfiguration: &croupierv1.RuntimeConfiguration{ServerProcesses: []*croupierv1.ServerProcess{{LaunchPath: "/srv/builds/../../bin/sh", ConcurrentExecutions: 1}}}},
			"65 parameters":         {GameId: "g", Env: "prod", RuntimeConfiguration: &croupierv1.RuntimeConfiguration{ServerProcesses: []*croupierv1.ServerProcess{{LaunchPath: "/bin/game", ConcurrentExecutions: 1, Parameters: make([]string, 65)}}}},
			"huge parameter":        {GameId: "g", Env: "prod", RuntimeConfiguration: &croupierv1.RuntimeConfiguration{ServerProcesses: []*croupierv1.ServerProcess{{LaunchPath: "/bin/game", ConcurrentExecutions: 1, Parameters: []string{strings.Repeat("x", 1025)}}}}},
			"huge env value":        {GameId: "g", Env: "prod", RuntimeConfiguration: &croupierv1.RuntimeConfiguration{ServerProcesses: []*croupierv1.ServerProcess{{LaunchPath: "/bin/game", ConcurrentExecutions: 1, Environment: map[string]string{"X": strings.Repeat("x", 4097)}}}}},
			"env LD_PRELOAD":        {GameId: "g", Env: "prod", RuntimeConfiguration: &croupierv1.RuntimeConfiguration{ServerProcesses: []*croupierv1.ServerProcess{{LaunchPath: "/bin/game", ConcurrentExecutions: 1, Environment: map[string]string{"LD_PRELOAD": "x"}}}}},
			"env BASH_ENV":          {GameId: "g", Env: "prod", RuntimeConfiguration: &croupierv1.RuntimeConfiguration{ServerProcesses: []*croupierv1.ServerProcess{{LaunchPath: "/bin/game", ConcurrentExecutions: 1, Environment: map[string]string{"BASH_ENV": "x"}}}}},
			"env PATH":              {GameId: "g", Env: "prod", RuntimeConfiguration: &croupierv1.RuntimeConfiguration{ServerProcesses: []*croupierv1.ServerProcess{{LaunchPath: "/bin/game", ConcurrentExecutions: 1, Environment: map[string]string{"PATH": "x"}}}}},
			"env NODE_OPTIONS":      {GameId: "g", Env: "prod", RuntimeConfiguration: &croupierv1.RuntimeConfiguration{ServerProcesses: []*croupierv1.ServerProcess{{LaunchPath: "/bin/game", ConcurrentExecutions: 1, Environment: map[string]string{"NODE_OPTIONS": "x"}}}}},
			"env CROUPIER_AGENT_ID": {GameId: "g", Env: "prod", RuntimeConfiguration: &croupierv1.RuntimeConfiguration{ServerProcesses: []*croupierv1.ServerProcess{{LaunchPath: "/bin/game", ConcurrentExecutions: 1, Environment: map[string]string{"CROUPIER_AGENT_ID": "x"}}}}},
			"env GSE_SDK_ADDR":      {GameId: "g", Env: "prod", RuntimeConfiguration: &croupierv1.RuntimeConfiguration{ServerProcesses: []*croupierv1.ServerProcess{{LaunchPath: "/bin/game", ConcurrentExecutions: 1, Environment: map[string]string{"GSE_SDK_ADDR": "x"}}}}},
			"activation 601":        {GameId: "g", Env: "prod", RuntimeConfiguration: &croupierv1.RuntimeConfiguration{GameServerSessionActivationTimeoutSeconds: 601}},
			"reservation -1":        {GameId: "g", Env: "prod", PlayerSessionReservationTimeoutSeconds: -1},
			"no scope":              {Name: "x"},
			"bad fleet id":          {FleetId: "a b", GameId: "g", Env: "prod"},
			"empty selector":        {GameId: "g", Env: "prod", AgentSelector: map[string]string{"": "x"}},
		} {
			_, err := h.svc.CreateFleet(c, bad)
			if err == nil {
				t.Fatalf("%s: accepted", name)
			}
			wantErr(t, err, codes.InvalidArgument, fleet.CodeInvalidArgument)
		}
		_, err = h.svc.CreateFleet(c, &croupierv1.Fleet{GameId: "g", Env: "staging"})
		wantErr(t, err, codes.FailedPrecondition, fleet.CodeUnknownScope)
		_, err = h.svc.CreateFleet(c, &croupierv1.Fleet{FleetId: f.GetFleetId(), GameId: "g", Env: "prod"})
		wantErr(t, err, codes.AlreadyExists, fleet.CodeFleetExists)

		// Agents host the fleets whose selector their labels satisfy.
		other := h.fleet(t, "f-any")
		got, err := h.svc.AgentFleets(c, "g", "prod", map[string]string{"region": "eu", "rack": "3"})
		mustNil(t, err, "agent fleets")
		if len(got) != 2 {
			t.Fatalf("an eu agent hosts %d fleets, want 2", len(got))
		}
		got, _ = h.svc.AgentFleets(c, "g", "prod", map[string]string{"region": "us"})
		if len(got) != 1 || got[0].GetFleetId() != other.GetFleetId() {
			t.Fatalf("a us agent hosts %v", got)
		}

		upd := &croupierv1.Fleet{FleetId: f.GetFleetId(), Name: "renamed", ProtectionPolicy: fleet.FullProtection, Version: 1}
		u, err := h.svc.UpdateFleet(c, upd)
		mustNil(t, err, "update")
		if u.GetName() != "renamed" || u.GetVersion() != 2 || u.GetGameId() != "g" {
			t.Fatalf("updated %v", u)
		}
		_, err = h.svc.UpdateFleet(c, upd) // still version 1
		wantErr(t, err, codes.Aborted, fleet.CodeFleetChanged)
		_, err = h.svc.UpdateFleet(c, &croupierv1.Fleet{FleetId: f.GetFleetId(), GameId: "g", Env: "other"})
		wantErr(t, err, codes.InvalidArgument, fleet.CodeInvalidArgument)

		// A fleet with a live session cannot be deleted.
		h.processes(t, other.GetFleetId(), "a1", 1)
		g, err := h.svc.CreateGameServerSession(c, &croupierv1.CreateGameServerSessionRequest{FleetId: other.GetFleetId()})
		mustNil(t, err, "create session")
		wantErr(t, h.svc.DeleteFleet(c, other.GetFleetId()), codes.FailedPrecondition, fleet.CodeFleetInUse)
		_, err = h.svc.TerminateGameServerSession(c, g.GetGameServerSessionId(), true)
		mustNil(t, err, "terminate")
		mustNil(t, h.svc.DeleteFleet(c, other.GetFleetId()), "delete")
		wantErr(t, h.svc.DeleteFleet(c, other.GetFleetId()), codes.NotFound, fleet.CodeFleetNotFound)
		list, err := h.svc.ListFleets(c, "g", "prod")
		mustNil(t, err, "list")
		if len(list) != 1 {
			t.Fatalf("list %v", list)
		}
		_, err = h.svc.ListFleets(c, "g", "")
		wantErr(t, err, codes.InvalidArgument, fleet.CodeInvalidArgument)
	})
}

func TestProcessLogAndListing(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, h *harness) {
		c := ctx(t)
		h.fleet(t, "f1")
		procs := h.processes(t, "f1", "a1", 2)
		res, err := h.svc.GetProcessLog(c, &croupierv1.GetProcessLogRequest{FleetId: "f1", ProcessId: procs[1], Path: "/logs/game.log"})
		mustNil(t, err, "log")
		if string(res.GetData()) != "hello from a1" || !res.GetEof() {
			t.Fatalf("log %v", res)
		}
		_, err = h.svc.GetProcessLog(c, &croupierv1.GetProcessLogRequest{FleetId: "f1", ProcessId: procs[1], Path: "/etc/passwd"})
		wantErr(t, err, codes.NotFound, fleet.CodeProcessNotFound)
		_, err = h.svc.GetProcessLog(c, &croupierv1.GetProcessLogRequest{FleetId: "other", ProcessId: procs[1], Path: "/logs/game.log"})
		wantErr(t, err, codes.NotFound, fleet.CodeProcessNotFound)
		_, err = h.svc.GetProcessLog(c, &croupierv1.GetProcessLogRequest{FleetId: "f1", ProcessId: procs[1], Path: "x", Limit: 2 << 20})
		wantErr(t, err, codes.InvalidArgument, fleet.CodeInvalidArgument)

		ps, err := h.svc.ListProcesses(c, &croupierv1.ListProcessesRequest{FleetId: "f1", AgentId: "a1"})
		mustNil(t, err, "list")
		if len(ps) != 2 || ps[0].GetGrpcPort() != 9000 || ps[0].GetLogPaths()[0] != "/logs/game.log" || !ps[0].GetHealthy() {
			t.Fatalf("processes %v", ps)
		}
		// Another agent cannot report (or take over) these processes.
		_, err = h.api.ReportProcesses(c, &croupierv1.ReportProcessesRequest{AgentId: "a2", Processes: []*croupierv1.Process{
			{ProcessId: procs[0], FleetId: "f1", GameId: "g", Env: "prod", Status: store.ProcessCrashed}}})
		wantStatus(t, err, codes.PermissionDenied)
		_, err = h.api.ReportProcesses(c, &croupierv1.ReportProcessesRequest{AgentId: "a1", Processes: []*croupierv1.Process{{ProcessId: "x"}}})
		wantStatus(t, err, codes.InvalidArgument)
	})
}

func TestAgentAuthorization(t *testing.T) {
	t.Parallel()
	h := newHarness(t, store.DriverSQLite)
	var calls []string
	svc, err := fleet.New(fleet.Config{Store: h.st, Agents: h.agents, Now: h.clock.Now,
		AuthorizeAgent: func(_ context.Context, agentID, game, env string) error {
			calls = append(calls, agentID+"@"+game+"/"+env)
			if agentID != "a1" || game != "" && (game != "g" || env != "prod") {
				return status.Error(codes.PermissionDenied, "not you")
			}
			return nil
		}})
	mustNil(t, err, "new")
	defer svc.Close()
	api := svc.AgentAPI()
	c := ctx(t)
	_, err = api.GetAgentFleets(c, &croupierv1.GetAgentFleetsRequest{AgentId: "a1", GameId: "g", Env: "prod"})
	mustNil(t, err, "own scope")
	_, err = api.GetAgentFleets(c, &croupierv1.GetAgentFleetsRequest{AgentId: "a1", GameId: "other", Env: "prod"})
	wantStatus(t, err, codes.PermissionDenied)
	_, err = api.ReportProcesses(c, &croupierv1.ReportProcessesRequest{AgentId: "a2"})
	wantStatus(t, err, codes.PermissionDenied)
	_, err = api.ReportProcesses(c, &croupierv1.ReportProcessesRequest{AgentId: "a1", Processes: []*croupierv1.Process{
		{ProcessId: "p", FleetId: "f", GameId: "other", Env: "prod", Status: store.ProcessActive}}})
	wantStatus(t, err, codes.PermissionDenied)
	_, err = api.ActivateGameServerSession(c, &croupierv1.ActivateGameServerSessionRequest{})
	wantStatus(t, err, codes.InvalidArgument)
	if len(calls) != 5 {
		t.Fatalf("authorizer called %d times: %v", len(calls), calls)
	}
}
