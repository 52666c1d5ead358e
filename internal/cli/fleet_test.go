package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/fleet"
	"github.com/croupier/croupier/internal/store/storetest"
)

// fleetTestAgent activates every session it is handed, from inside the
// command, as a GSE game does.
type fleetTestAgent struct{ api *fleet.AgentAPI }

func (a fleetTestAgent) StartGameServerSession(ctx context.Context, cmd *croupierv1.StartGameServerSessionCommand) (*croupierv1.StartGameServerSessionResult, error) {
	_, err := a.api.ActivateGameServerSession(ctx, &croupierv1.ActivateGameServerSessionRequest{AgentId: "a1", ProcessId: cmd.GetProcessId(),
		GameServerSessionId: cmd.GetGameServerSession().GetGameServerSessionId()})
	return &croupierv1.StartGameServerSessionResult{Ok: err == nil}, nil
}

func (fleetTestAgent) TerminateProcess(context.Context, *croupierv1.TerminateProcessCommand) (*croupierv1.TerminateProcessResult, error) {
	return &croupierv1.TerminateProcessResult{}, nil
}

func (fleetTestAgent) FetchProcessLog(context.Context, *croupierv1.FetchProcessLogCommand) (*croupierv1.FetchProcessLogResult, error) {
	return &croupierv1.FetchProcessLogResult{Data: []byte("log line\n"), Size: 9, Eof: true}, nil
}

func (fleetTestAgent) SyncFleets(context.Context, *croupierv1.SyncFleetsCommand) (*croupierv1.SyncFleetsResult, error) {
	return &croupierv1.SyncFleetsResult{}, nil
}

func TestFleetCommands(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st := storetest.SQLite(t)
	if err := st.Scopes().Declare(ctx, "g", "prod"); err != nil {
		t.Fatal(err)
	}
	disp := fleet.NewLocalDispatcher()
	svc, err := fleet.New(fleet.Config{Store: st, Agents: disp, SweepInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	svc.Start()
	t.Cleanup(svc.Close)
	disp.Set("a1", fleetTestAgent{api: svc.AgentAPI()})
	gs := grpc.NewServer()
	croupierv1.RegisterFleetServiceServer(gs, svc.GRPC())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	profile := filepath.Join(t.TempDir(), "client.yaml")
	if err := os.WriteFile(profile, []byte("address: "+lis.Addr().String()+"\ninsecure: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		t.Helper()
		var out, errb bytes.Buffer
		g := &globals{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, profile: profile}
		root := &cobra.Command{Use: "croupier", SilenceUsage: true, SilenceErrors: true}
		root.AddCommand(newFleetCmd(g), newSessionCmd(g), newPlayerCmd(g))
		root.SetArgs(args)
		root.SetOut(&out)
		root.SetErr(&errb)
		err := root.ExecuteContext(ctx)
		return out.String(), err
	}
	must := func(want string, args ...string) string {
		t.Helper()
		out, err := run(args...)
		if err != nil {
			t.Fatalf("croupier %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		if !strings.Contains(out, want) {
			t.Fatalf("croupier %s: output lacks %q:\n%s", strings.Join(args, " "), want, out)
		}
		return out
	}
	fails := func(want string, args ...string) {
		t.Helper()
		out, err := run(args...)
		if err == nil || exitCode(err) != exitCallFailed || !strings.Contains(err.Error(), want) {
			t.Fatalf("croupier %s: got %v (exit %d), want exit %d with %q\n%s", strings.Join(args, " "), err, exitCode(err), exitCallFailed, want, out)
		}
	}

	must(`"fleet_id": "f1"`, "fleet", "create", "--game", "g", "--env", "prod", "--id", "f1", "--name", "eu",
		"--launch-path", "/opt/game", "--param", "-x", "--concurrent", "2", "--env-var", "A=1", "--protection", "FullProtection", "-o", "json")
	must("2x /opt/game", "fleet", "list", "--game", "g", "--env", "prod")
	must("3x /opt/game", "fleet", "update", "f1", "--concurrent", "3")
	fails("--env-var", "fleet", "update", "f1", "--env-var", "novalue")
	fails("FLEET_NOT_FOUND", "fleet", "get", "nope")

	if _, err := svc.AgentAPI().ReportProcesses(ctx, &croupierv1.ReportProcessesRequest{AgentId: "a1", Processes: []*croupierv1.Process{
		{ProcessId: "p1", FleetId: "f1", GameId: "g", Env: "prod", Status: "ACTIVE", Healthy: true, IpAddress: "10.0.0.1", ClientPort: 7000, LogPaths: []string{"/l"}}}}); err != nil {
		t.Fatal(err)
	}
	must("p1", "fleet", "processes", "f1")
	must("log line", "fleet", "log", "f1", "p1", "/l")

	out := must(`"game_server_session"`, "session", "create", "--fleet", "f1", "--max-players", "2", "--property", "mode=duel", "-o", "json")
	var raw map[string]map[string]any
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatal(err)
	}
	id, _ := raw["game_server_session"]["game_server_session_id"].(string)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(must(id, "session", "get", id), "ACTIVE") {
		if time.Now().After(deadline) {
			t.Fatal("session not ACTIVE")
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	fails("INVALID_FILTER_EXPRESSION", "session", "search", "--fleet", "f1", "--filter", "playerSessionCount >> 1")
	must(id, "session", "search", "--fleet", "f1", "--filter", "gameServerSessionProperties.mode = 'duel'", "--sort", "creationTimeMillis DESC")
	must(id, "session", "list", "--fleet", "f1", "--status", "ACTIVE", "--all")

	out = must("RESERVED", "player", "join", id, "alice", "bob=level:7")
	if strings.Count(out, "RESERVED") != 2 || !strings.Contains(out, "10.0.0.1:7000") {
		t.Fatalf("join output:\n%s", out)
	}
	fails("GAME_SERVER_SESSION_FULL", "player", "join", id, "carol")
	must("bob", "player", "list", "--session", id, "--limit", "1", "--all")
	must("DENY_ALL", "session", "update", id, "--policy", "DENY_ALL", "--max-players", "3")
	fails("PLAYER_SESSION_CREATION_DENIED", "player", "join", id, "carol")

	must("PENDING", "session", "placement", "start", "pl-1", "--fleet", "f1", "--timeout", "1m", "--property", "k=v")
	must("CANCELLED", "session", "placement", "stop", "pl-1")
	must("CANCELLED", "session", "placement", "get", "pl-1")
	must("FORCE_TERMINATED", "session", "terminate", id, "--force")
	must("deleted fleet f1", "fleet", "delete", "f1")
}
