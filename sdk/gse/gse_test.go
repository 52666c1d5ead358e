package gse_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/api/tencentcloud/gse/grpcsdk"
	"github.com/croupier/croupier/internal/fleet"
	agentgse "github.com/croupier/croupier/internal/gse"
	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/store/storetest"
	"github.com/croupier/croupier/sdk/gse"
)

// fake pids: the helpers run in this test process, each with its own pid.
const pidBase = 3_500_000

var nextPID atomic.Int32

func processInfo(pid int) (uint64, bool) {
	if pid >= pidBase {
		return 1, true
	}
	return agentgse.ReadProcessInfo(pid)
}

func noKill(pid int, _ syscall.Signal) error {
	if max(pid, -pid) >= pidBase {
		return nil
	}
	return errors.New("test: refusing to signal a real process")
}

// testBuilds is the agent's build directory: game logs lie under it.
const testBuilds = "/nonexistent/croupier-test-builds"

// callerCheck is the agent's check that a call comes from the pid it
// carries: the tests' processes are this test process under fake pids.
func callerCheck(client, server net.Addr, pid int) error {
	if pid >= pidBase {
		return nil
	}
	return agentgse.CheckSocketOwner(client, server, pid)
}

// setup runs a fleet server and an agent for fleet f1 in-process.
func setup(t *testing.T) (*fleet.Service, *agentgse.Agent) {
	t.Helper()
	st := storetest.SQLite(t)
	disp := fleet.NewLocalDispatcher()
	svc, err := fleet.New(fleet.Config{Store: st, Agents: disp, SweepInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	svc.Start()
	t.Cleanup(svc.Close)
	ctx := t.Context()
	if err := st.Scopes().Declare(ctx, "g", "prod"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateFleet(ctx, &croupierv1.Fleet{FleetId: "f1", GameId: "g", Env: "prod"}); err != nil {
		t.Fatal(err)
	}
	a, err := agentgse.New(agentgse.Config{AgentID: "a1", GameID: "g", Env: "prod", Addr: "127.0.0.1:0",
		DataDir: filepath.Join(t.TempDir(), "agent"), BuildDirs: []string{testBuilds}, IPAddress: "127.0.0.1", Upstream: svc.AgentAPI(),
		ProcessInfo: processInfo, Kill: noKill, CallerCheck: callerCheck, DefaultFleetID: "f1", TickInterval: 10 * time.Millisecond,
		HealthInterval: 50 * time.Millisecond, FleetSyncInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	disp.Set("a1", a)
	return svc, a
}

func eventually(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
}

func TestHelperLifecycle(t *testing.T) {
	t.Parallel()
	svc, agent := setup(t)
	ctx := t.Context()
	var started atomic.Value
	var terminateAt atomic.Value
	srv, err := gse.New(gse.Options{AgentAddr: agent.Addr(), ClientPort: 7100, LogPaths: []string{filepath.Join(testBuilds, "x.log")},
		PID: pidBase + int(nextPID.Add(1)),
		Handlers: gse.Handlers{
			OnStartGameServerSession: func(_ context.Context, s *grpcsdk.GameServerSession) error {
				started.Store(s.GetGameServerSessionData())
				return nil
			},
			OnProcessTerminate: func(_ context.Context, at time.Time) { terminateAt.Store(at) },
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool {
		ps, _ := svc.ListProcesses(ctx, &croupierv1.ListProcessesRequest{FleetId: "f1", Status: store.ProcessActive})
		return len(ps) == 1 && ps[0].GetClientPort() == 7100 && ps[0].GetGrpcPort() == int32(srv.GRPCPort())
	}, "the process to be ACTIVE")

	if err := srv.AcceptPlayerSession(ctx, "x"); err == nil {
		t.Fatal("accepted a player without a session")
	}
	gss, err := svc.CreateGameServerSession(ctx, &croupierv1.CreateGameServerSessionRequest{FleetId: "f1", MaxPlayers: 4, GameServerSessionData: "map=7"})
	if err != nil {
		t.Fatal(err)
	}
	id := gss.GetGameServerSessionId()
	eventually(t, func() bool {
		g, _ := svc.GetGameServerSession(ctx, id)
		return g.GetStatus() == store.GSSActive
	}, "the session to be ACTIVE")
	if started.Load() != "map=7" || srv.Session().GetGameServerSessionId() != id {
		t.Fatalf("handler saw %v, session %v", started.Load(), srv.Session())
	}

	ps, err := svc.JoinGameServerSession(ctx, &croupierv1.JoinGameServerSessionRequest{GameServerSessionId: id, PlayerId: "p1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.AcceptPlayerSession(ctx, ps.GetPlayerSessionId()); err != nil {
		t.Fatal(err)
	}
	var gerr *gse.Error
	if err := srv.AcceptPlayerSession(ctx, ps.GetPlayerSessionId()); !errors.As(err, &gerr) || gerr.Status != grpcsdk.GseResponse_ERROR_400 {
		t.Fatalf("accepting twice: %v", err)
	}
	list, err := srv.DescribePlayerSessions(ctx, &grpcsdk.DescribePlayerSessionsRequest{})
	if err != nil || len(list.GetPlayerSessions()) != 1 || list.GetPlayerSessions()[0].GetStatus() != store.PlayerActive {
		t.Fatalf("describe: %v %v", list, err)
	}
	if err := srv.UpdatePlayerSessionCreationPolicy(ctx, "DENY_ALL"); err != nil {
		t.Fatal(err)
	}
	if err := srv.ReportCustomData(ctx, 1, 2); err != nil {
		t.Fatal(err)
	}
	if err := srv.RemovePlayerSession(ctx, ps.GetPlayerSessionId()); err != nil {
		t.Fatal(err)
	}

	// The operator ends the session: OnProcessTerminate, then the helper
	// ends the session and the process.
	if _, err := svc.TerminateGameServerSession(ctx, id, false); err != nil {
		t.Fatal(err)
	}
	select {
	case <-srv.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed after OnProcessTerminate")
	}
	if at, _ := terminateAt.Load().(time.Time); at.Before(time.Now().Add(4 * time.Minute)) {
		t.Fatalf("termination time %v", at)
	}
	g, _ := svc.GetGameServerSession(ctx, id)
	if g.GetStatus() != store.GSSTerminated {
		t.Fatalf("session after End: %v", g)
	}
	eventually(t, func() bool {
		ps := agent.Processes()
		return len(ps) == 1 && ps[0].GetStatus() == store.ProcessTerminating
	}, fmt.Sprint("ProcessEnding to be recorded: ", agent.Processes()))
}

func TestHelperRefusesSession(t *testing.T) {
	t.Parallel()
	svc, agent := setup(t)
	ctx := t.Context()
	srv, err := gse.New(gse.Options{AgentAddr: agent.Addr(), PID: pidBase + int(nextPID.Add(1)),
		Handlers: gse.Handlers{OnStartGameServerSession: func(context.Context, *grpcsdk.GameServerSession) error {
			return errors.New("map not found")
		}}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool {
		ps, _ := svc.ListProcesses(ctx, &croupierv1.ListProcessesRequest{FleetId: "f1", Status: store.ProcessActive})
		return len(ps) == 1
	}, "the process to be ACTIVE")
	gss, err := svc.CreateGameServerSession(ctx, &croupierv1.CreateGameServerSessionRequest{FleetId: "f1"})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool {
		g, _ := svc.GetGameServerSession(ctx, gss.GetGameServerSessionId())
		return g.GetStatus() == store.GSSError
	}, "the refused session to be ERROR")
	if srv.Session() != nil {
		t.Fatal("the helper kept a refused session")
	}
}

// TestCallbackPortRefusesOtherUsers: the game's callback port (where the
// agent says OnStartGameServerSession, OnProcessTerminate) closes a
// connection from another user of the host (nobody; starting it needs
// root) before reading it, and serves this process's user (the HTTP/2
// server answers the preface with its settings).
func TestCallbackPortRefusesOtherUsers(t *testing.T) {
	t.Parallel()
	if os.Getuid() != 0 {
		t.Skip("starting a process as another user needs root")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash here")
	}
	_, agent := setup(t)
	srv, err := gse.New(gse.Options{AgentAddr: agent.Addr(), ClientPort: 7101, PID: pidBase + int(nextPID.Add(1))})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Sends the HTTP/2 preface and reads one byte, waiting up to 5 s: exit
	// status 0 when the server answers, 1 when it closes the connection.
	script := `trap '' PIPE; exec 3<>/dev/tcp/127.0.0.1/` + strconv.Itoa(srv.GRPCPort()) +
		`; printf 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n' >&3; read -t 5 -N 1 -u 3 _; exit $?`
	run := func(uid uint32) int {
		cmd := exec.Command("bash", "-c", script)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("uid %d: %v", uid, err)
		}
		return cmd.ProcessState.ExitCode()
	}
	if code := run(65534); code != 1 {
		t.Errorf("another user's connection: exit status %d; want 1 (closed unread)", code)
	}
	if code := run(uint32(os.Getuid())); code != 0 {
		t.Errorf("this user's connection: exit status %d; want 0 (answered)", code)
	}
}
