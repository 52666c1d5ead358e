package fleet_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/fleet"
)

// TestLaunchPathOutsideBuildDirs: a fleet whose launch path lies outside
// the build directories an agent that would host it reported is refused at
// create and update, naming the agent and its directories; agents of other
// scopes or labels do not count.
func TestLaunchPathOutsideBuildDirs(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, h *harness) {
		c := ctx(t)
		api := h.svc.AgentAPI()
		report := func(agent, env string, labels map[string]string, dirs ...string) {
			t.Helper()
			_, err := api.GetAgentFleets(c, &croupierv1.GetAgentFleetsRequest{AgentId: agent, GameId: "g", Env: env, Labels: labels, BuildDirs: dirs})
			mustNil(t, err, "GetAgentFleets")
		}
		report("a-eu", "prod", map[string]string{"region": "eu"}, "/srv/builds", "/opt/game")
		report("a-us", "prod", map[string]string{"region": "us"}, "/srv/us-builds")
		report("a-staging", "staging", nil, "/elsewhere")

		proc := func(path string, params ...string) *croupierv1.RuntimeConfiguration {
			return &croupierv1.RuntimeConfiguration{ServerProcesses: []*croupierv1.ServerProcess{{LaunchPath: path, Parameters: params, ConcurrentExecutions: 1}}}
		}
		eu := map[string]string{"region": "eu"}

		// The attack from the issue: /bin/sh -c '...' is refused.
		_, err := h.svc.CreateFleet(c, &croupierv1.Fleet{GameId: "g", Env: "prod", AgentSelector: eu, RuntimeConfiguration: proc("/bin/sh", "-c", "id > /tmp/x")})
		fe := wantErr(t, err, codes.FailedPrecondition, fleet.CodeLaunchPathNotAllowed)
		for _, want := range []string{`"/bin/sh"`, "agent a-eu", "/srv/builds, /opt/game", "build_dirs"} {
			if !strings.Contains(fe.Msg, want) {
				t.Fatalf("message %q does not say %q", fe.Msg, want)
			}
		}
		if fe.Details["agent_id"] != "a-eu" || fe.Details["field"] != "runtime_configuration.server_processes[0].launch_path" {
			t.Fatalf("details %v", fe.Details)
		}
		// Without a selector, every agent of g/prod would host it: each must allow it.
		_, err = h.svc.CreateFleet(c, &croupierv1.Fleet{GameId: "g", Env: "prod", RuntimeConfiguration: proc("/srv/builds/game")})
		wantErr(t, err, codes.FailedPrecondition, fleet.CodeLaunchPathNotAllowed)

		// Inside the hosts' directories: accepted (the staging agent does not count).
		f, err := h.svc.CreateFleet(c, &croupierv1.Fleet{GameId: "g", Env: "prod", AgentSelector: eu, RuntimeConfiguration: proc("/opt/game/bin/server")})
		mustNil(t, err, "create inside the build dirs")

		// Update to a path outside is refused and leaves the fleet as it was.
		_, err = h.svc.UpdateFleet(c, &croupierv1.Fleet{FleetId: f.GetFleetId(), AgentSelector: eu, RuntimeConfiguration: proc("/usr/bin/python3", "-c", "print(1)")})
		wantErr(t, err, codes.FailedPrecondition, fleet.CodeLaunchPathNotAllowed)
		got, err := h.svc.GetFleet(c, f.GetFleetId())
		mustNil(t, err, "get")
		if p := got.GetRuntimeConfiguration().GetServerProcesses()[0].GetLaunchPath(); p != "/opt/game/bin/server" || got.GetVersion() != 1 {
			t.Fatalf("refused update changed the fleet: %s v%d", p, got.GetVersion())
		}
		// Moving the fleet to the us agents checks their directories.
		_, err = h.svc.UpdateFleet(c, &croupierv1.Fleet{FleetId: f.GetFleetId(), AgentSelector: map[string]string{"region": "us"}, RuntimeConfiguration: proc("/opt/game/bin/server")})
		fe = wantErr(t, err, codes.FailedPrecondition, fleet.CodeLaunchPathNotAllowed)
		if fe.Details["agent_id"] != "a-us" {
			t.Fatalf("refused for agent %q, want a-us", fe.Details["agent_id"])
		}

		// Agents report well-formed directories only.
		for _, dirs := range [][]string{{"relative"}, {"/a/../b"}, {"/" + strings.Repeat("d", 1024)}, make([]string, 17)} {
			_, err := api.GetAgentFleets(c, &croupierv1.GetAgentFleetsRequest{AgentId: "a-bad", GameId: "g", Env: "prod", BuildDirs: dirs})
			wantStatus(t, err, codes.InvalidArgument)
		}
	})
}
