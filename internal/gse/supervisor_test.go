package gse_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/gse"
	"github.com/croupier/croupier/internal/store"
)

// gameFleet creates fleet f1 running n gsegame processes per agent with
// extra parameters.
func (e *env) gameFleet(n int32, extra ...string) string {
	e.t.Helper()
	logPath := filepath.Join(e.gameDir, "game.log")
	e.t.Cleanup(func() {
		if e.t.Failed() {
			b, _ := os.ReadFile(logPath)
			e.t.Logf("game log:\n%s", b)
		}
	})
	e.fleet("f1", func(f *croupierv1.Fleet) {
		f.RuntimeConfiguration = &croupierv1.RuntimeConfiguration{
			GameServerSessionActivationTimeoutSeconds: 30,
			ServerProcesses: []*croupierv1.ServerProcess{{LaunchPath: gsegameBin, ConcurrentExecutions: n,
				Parameters: append([]string{"-log", logPath}, extra...), Environment: map[string]string{"GAME_MODE": "test"}}},
		}
	})
	return logPath
}

// waitActive waits until the fleet has exactly n ACTIVE processes and
// returns them.
func (e *env) waitActive(n int) []*croupierv1.Process {
	e.t.Helper()
	var ps []*croupierv1.Process
	eventually(e.t, 20*time.Second, func() bool { ps = e.liveProcesses("f1", store.ProcessActive); return len(ps) == n },
		func() string { return fmt.Sprint("processes: ", e.processes("f1")) })
	return ps
}

func pidsOf(ps []*croupierv1.Process) []int32 {
	var out []int32
	for _, p := range ps {
		out = append(out, p.GetPid())
	}
	slices.Sort(out)
	return out
}

// TestSupervisedFleet: the agent runs the fleet's processes (real
// gsegame binaries), which go through a full session with a real player
// connection, and relaunches a process that ended cleanly.
func TestSupervisedFleet(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.gameFleet(2)
	e.agent(e.config("a1"))
	first := e.waitActive(2)
	c := ctx(t)

	gss, err := e.svc.CreateGameServerSession(c, &croupierv1.CreateGameServerSessionRequest{FleetId: "f1", MaxPlayers: 2, Name: "real"})
	mustNil(t, err, "create")
	id := gss.GetGameServerSessionId()
	e.waitSession(id, store.GSSActive) // activated from inside OnStartGameServerSession
	ps, err := e.svc.JoinGameServerSession(c, &croupierv1.JoinGameServerSessionRequest{GameServerSessionId: id, PlayerId: "alice"})
	mustNil(t, err, "join")

	// The player connects to the address in the player session.
	conn, err := net.Dial("tcp", net.JoinHostPort(ps.GetIpAddress(), fmt.Sprint(ps.GetPort())))
	mustNil(t, err, "connect to the game")
	defer conn.Close()
	_, err = fmt.Fprintf(conn, "JOIN %s\n", ps.GetPlayerSessionId())
	mustNil(t, err, "send")
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	mustNil(t, err, "read")
	if line != "OK\n" {
		t.Fatalf("game answered %q", line)
	}
	playerStatus := func() string {
		l, _, err := e.svc.DescribePlayerSessions(c, &croupierv1.DescribePlayerSessionsRequest{PlayerSessionId: ps.GetPlayerSessionId()})
		mustNil(t, err, "describe")
		return l[0].GetStatus()
	}
	eventually(t, 5*time.Second, func() bool { return playerStatus() == store.PlayerActive }, playerStatus)
	conn.Close()
	eventually(t, 5*time.Second, func() bool { return playerStatus() == store.PlayerCompleted }, playerStatus)

	// Terminating the session ends its process (OnProcessTerminate ->
	// TerminateGameServerSession + ProcessEnding + exit); the slot
	// launches a new one.
	_, err = e.svc.TerminateGameServerSession(c, id, false)
	mustNil(t, err, "terminate")
	s := e.waitSession(id, store.GSSTerminated)
	if s.GetStatusReason() != "TERMINATED_BY_PROCESS" && s.GetStatusReason() != "PROCESS_ENDED" {
		t.Fatalf("session ended with %q", s.GetStatusReason())
	}
	eventually(t, 20*time.Second, func() bool {
		return len(e.liveProcesses("f1", store.ProcessTerminated)) == 1 && len(e.liveProcesses("f1", store.ProcessActive)) == 2
	}, func() string { return fmt.Sprint(e.processes("f1")) })
	if slices.Equal(pidsOf(first), pidsOf(e.liveProcesses("f1", store.ProcessActive))) {
		t.Fatal("no new process replaced the one that ended")
	}
}

func TestCrashedProcessIsRestarted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.gameFleet(1)
	e.agent(e.config("a1"))
	p := e.waitActive(1)[0]
	gss, err := e.svc.CreateGameServerSession(ctx(t), &croupierv1.CreateGameServerSessionRequest{FleetId: "f1", MaxPlayers: 2})
	mustNil(t, err, "create")
	e.waitSession(gss.GetGameServerSessionId(), store.GSSActive)

	mustNil(t, syscall.Kill(int(p.GetPid()), syscall.SIGKILL), "kill the game")
	eventually(t, 10*time.Second, func() bool { return len(e.liveProcesses("f1", store.ProcessCrashed)) == 1 },
		func() string { return fmt.Sprint(e.processes("f1")) })
	if crashed := e.liveProcesses("f1", store.ProcessCrashed)[0]; crashed.GetStatusReason() != "EXIT_CODE_137" {
		t.Fatalf("crash reason %q", crashed.GetStatusReason())
	}
	if s := e.waitSession(gss.GetGameServerSessionId(), store.GSSTerminated); s.GetStatusReason() != "INTERRUPTED" {
		t.Fatalf("session of the crashed process: %v", s)
	}
	next := e.waitActive(1)[0]
	if next.GetPid() == p.GetPid() || next.GetProcessId() == p.GetProcessId() {
		t.Fatalf("not restarted: %v", next)
	}
}

func TestReadyTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.gameFleet(1, "-mode", "noready")
	cfg := e.config("a1")
	cfg.ReadyTimeout = 300 * time.Millisecond
	e.agent(cfg)
	// Killed for READY_TIMEOUT, and relaunched (to be killed again).
	eventually(t, 20*time.Second, func() bool {
		n := 0
		for _, p := range e.liveProcesses("f1", store.ProcessCrashed) {
			if p.GetStatusReason() == gse.ReasonReadyTimeout && p.GetReadyTimeMs() == 0 {
				n++
			}
		}
		return n >= 2
	}, func() string { return fmt.Sprint(e.processes("f1")) })
}

func TestExitTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.gameFleet(1, "-mode", "hang")
	cfg := e.config("a1")
	cfg.ExitTimeout = 300 * time.Millisecond
	e.agent(cfg)
	e.waitActive(1)
	gss, err := e.svc.CreateGameServerSession(ctx(t), &croupierv1.CreateGameServerSessionRequest{FleetId: "f1"})
	mustNil(t, err, "create")
	e.waitSession(gss.GetGameServerSessionId(), store.GSSActive)
	_, err = e.svc.TerminateGameServerSession(ctx(t), gss.GetGameServerSessionId(), false)
	mustNil(t, err, "terminate")
	// The game calls ProcessEnding but does not exit: killed 300 ms later,
	// and TERMINATED (it did say it was ending).
	eventually(t, 20*time.Second, func() bool {
		ps := e.liveProcesses("f1", store.ProcessTerminated)
		return len(ps) == 1 && ps[0].GetStatusReason() == gse.ReasonExitTimeout
	}, func() string { return fmt.Sprint(e.processes("f1")) })
	e.waitActive(1) // and replaced
}

// TestAdoptionAfterAgentRestart: a new agent on the same data dir and GSE
// address takes over the running processes instead of launching others.
func TestAdoptionAfterAgentRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	logPath := e.gameFleet(2)
	cfg := e.config("a1")
	first := e.agent(cfg)
	before := e.waitActive(2)
	// The server learns of a process inside its ProcessReady call; wait
	// until both games have their answer before the agent goes away.
	eventually(t, 10*time.Second, func() bool {
		b, _ := os.ReadFile(logPath)
		return strings.Count(string(b), "ready: client port") == 2
	}, func() string { return "games did not log ready" })
	cfg.Addr = first.Addr() // the games keep calling this address
	first.Close()

	second := e.agent(cfg)
	if second.Addr() != cfg.Addr {
		t.Fatalf("second agent on %s, want %s", second.Addr(), cfg.Addr)
	}
	// Give it several fleet syncs and ticks: still the same two processes.
	eventually(t, 10*time.Second, func() bool { return len(second.Processes()) == 2 }, func() string { return "not adopted" })
	for range 5 {
		second.Resync()
	}
	after := e.waitActive(2)
	if !slices.Equal(pidsOf(before), pidsOf(after)) || len(e.processes("f1")) != 2 {
		t.Fatalf("processes before %v, after %v (all: %v)", pidsOf(before), pidsOf(after), e.processes("f1"))
	}
	// The adopted processes work: a session, and the health checks and
	// exits are seen by the new agent.
	gss, err := e.svc.CreateGameServerSession(ctx(t), &croupierv1.CreateGameServerSessionRequest{FleetId: "f1", MaxPlayers: 2})
	mustNil(t, err, "create")
	e.waitSession(gss.GetGameServerSessionId(), store.GSSActive)
	mustNil(t, syscall.Kill(int(after[0].GetPid()), syscall.SIGKILL), "kill")
	eventually(t, 10*time.Second, func() bool { return len(e.liveProcesses("f1", store.ProcessCrashed)) == 1 },
		func() string { return fmt.Sprint(e.processes("f1")) })
	e.waitActive(2)
}

// TestAdoptionOfUnrecordedLaunch: an agent that stops between a launch and
// the state file's write (here: no state file at all, as after a kill -9
// right after the first launch) leaves a running process no file names.
// The next agent on the data dir finds it by the environment every launch
// sets, adopts it into its slot and launches no second process.
func TestAdoptionOfUnrecordedLaunch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.gameFleet(2, "-mode", "noready") // still launching when the agent goes: the crash window
	cfg := e.config("a1")
	cfg.ReadyTimeout = time.Minute
	first := e.agent(cfg)
	var launched []*croupierv1.Process
	eventually(t, 10*time.Second, func() bool { launched = first.Processes(); return len(launched) == 2 }, func() string { return "not launched" })
	cfg.Addr = first.Addr()
	first.Close()
	if err := os.Remove(filepath.Join(cfg.DataDir, "gse", "state.json")); err != nil {
		t.Fatal(err)
	}
	// One of the two ends while no agent runs: its slot must launch again,
	// which tells that the next agent's supervisor has run over its slots.
	kept, gone := launched[0], launched[1]
	mustNil(t, syscall.Kill(-int(gone.GetPid()), syscall.SIGKILL), "kill")
	eventually(t, 10*time.Second, func() bool { _, alive := gse.ReadProcessInfo(int(gone.GetPid())); return !alive },
		func() string { return "the killed process still runs" })

	second := e.agent(cfg)
	// The supervisor launches every empty slot of a tick in that tick, one
	// after the other: had the survivor not been adopted, both slots would
	// launch and the two processes listed here would both be new.
	var ps []*croupierv1.Process
	eventually(t, 10*time.Second, func() bool { ps = second.Processes(); return len(ps) >= 2 }, func() string { return fmt.Sprint(second.Processes()) })
	if len(ps) != 2 {
		t.Fatalf("processes after the restart %v, want 2: the one launched before, adopted, and the other slot's new one", ps)
	}
	var adopted *croupierv1.Process
	for _, p := range ps {
		if p.GetPid() == kept.GetPid() {
			adopted = p
		}
	}
	if adopted == nil || adopted.GetStatus() != store.ProcessLaunching || adopted.GetLaunchPath() != gsegameBin {
		t.Fatalf("processes after the restart %v, want pid %d adopted (LAUNCHING, launch path %s)", ps, kept.GetPid(), gsegameBin)
	}
}

// TestLogsSurviveTheProcess: the declared log file and the captured output
// stay readable through the server after the process ended.
func TestLogsSurviveTheProcess(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	logPath := e.gameFleet(1)
	e.agent(e.config("a1"))
	p := e.waitActive(1)[0]
	if len(p.GetLogPaths()) != 1 || p.GetLogPaths()[0] != logPath {
		t.Fatalf("log paths %v", p.GetLogPaths())
	}
	gss, err := e.svc.CreateGameServerSession(ctx(t), &croupierv1.CreateGameServerSessionRequest{FleetId: "f1"})
	mustNil(t, err, "create")
	e.waitSession(gss.GetGameServerSessionId(), store.GSSActive)
	_, err = e.svc.TerminateGameServerSession(ctx(t), gss.GetGameServerSessionId(), false)
	mustNil(t, err, "terminate")
	eventually(t, 20*time.Second, func() bool { return len(e.liveProcesses("f1", store.ProcessTerminated)) == 1 },
		func() string { return fmt.Sprint(e.processes("f1")) })
	e.waitActive(1) // the replacement writes to the same log path

	res, err := e.svc.GetProcessLog(ctx(t), &croupierv1.GetProcessLogRequest{FleetId: "f1", ProcessId: p.GetProcessId(), Path: logPath})
	mustNil(t, err, "log")
	text := string(res.GetData())
	if !strings.Contains(text, fmt.Sprintf("gsegame[%d]", p.GetPid())) || !strings.Contains(text, "exit") || !res.GetEof() {
		t.Fatalf("collected log of %d: %q", p.GetPid(), text)
	}
	part, err := e.svc.GetProcessLog(ctx(t), &croupierv1.GetProcessLogRequest{FleetId: "f1", ProcessId: p.GetProcessId(), Path: logPath, Offset: 5, Limit: 10})
	mustNil(t, err, "partial log")
	if string(part.GetData()) != text[5:15] || part.GetEof() || part.GetSize() != int64(len(text)) {
		t.Fatalf("chunk %q (size %d, eof %v)", part.GetData(), part.GetSize(), part.GetEof())
	}
	if _, err := e.svc.GetProcessLog(ctx(t), &croupierv1.GetProcessLogRequest{FleetId: "f1", ProcessId: p.GetProcessId(), Path: gse.StdoutLog}); err != nil {
		t.Fatalf("stdout log: %v", err)
	}
	if _, err := e.svc.GetProcessLog(ctx(t), &croupierv1.GetProcessLogRequest{FleetId: "f1", ProcessId: p.GetProcessId(), Path: "/etc/hostname"}); err == nil {
		t.Fatal("read a file the process did not declare")
	}
}

// TestScaleIn: lowering concurrent executions ends the surplus process and
// launches none.
func TestScaleIn(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.gameFleet(2)
	e.agent(e.config("a1"))
	e.waitActive(2)
	f, err := e.svc.GetFleet(ctx(t), "f1")
	mustNil(t, err, "get fleet")
	f.RuntimeConfiguration.ServerProcesses[0].ConcurrentExecutions = 1
	_, err = e.svc.UpdateFleet(ctx(t), f)
	mustNil(t, err, "update fleet")
	eventually(t, 20*time.Second, func() bool {
		ended := e.liveProcesses("f1", store.ProcessTerminated)
		return len(ended) == 1 && ended[0].GetStatusReason() == gse.ReasonScaleIn && len(e.liveProcesses("f1", store.ProcessActive)) == 1
	}, func() string { return fmt.Sprint(e.processes("f1")) })
}
