package gse_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/api/tencentcloud/gse/grpcsdk"
	"github.com/croupier/croupier/internal/gse"
	"github.com/croupier/croupier/internal/store"
)

// sleeper starts a real process that is not the caller, and kills it at
// the end of the test.
func sleeper(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

// TestCheckSocketOwner checks a real connection against real processes:
// the process holding it passes, another process and a missing pid fail.
// (Finding the connection's socket, over IPv4, IPv6 and mapped addresses,
// is localpeer's and tested there.)
func TestCheckSocketOwner(t *testing.T) {
	t.Parallel()
	other := sleeper(t).Process.Pid
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	c, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := lis.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	client, server := s.RemoteAddr(), s.LocalAddr() // as the agent sees the call
	if err := gse.CheckSocketOwner(client, server, os.Getpid()); err != nil {
		t.Errorf("the process holding the connection is refused: %v", err)
	}
	if err := gse.CheckSocketOwner(client, server, other); err == nil || !strings.Contains(err.Error(), "does not hold the connection") {
		t.Errorf("another process passes as the caller: %v", err)
	}
	if err := gse.CheckSocketOwner(client, server, 4_000_000); err == nil || !strings.Contains(err.Error(), "not a process") {
		t.Errorf("a missing pid: %v", err)
	}
}

// TestCallsAsAnotherProcessRefused: a local process cannot make GSE calls
// carrying another process's pid — neither a registered game's (to end it
// or take its sessions) nor any other process's on the host (to have the
// agent register and later kill it).
func TestCallsAsAnotherProcessRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.fleet("f1")
	a := e.agent(e.config("a1"))
	victim := e.fakeGame(a)
	victim.ready()
	eventually(t, 5*time.Second, func() bool { return len(e.liveProcesses("f1", store.ProcessActive)) == 1 }, func() string { return "not ready" })
	attacker := e.fakeGame(a)

	// The attacker's calls carry the victim's pid.
	attacker.pid = victim.pid
	resp, err := attacker.gse.ProcessReady(attacker.md(), &grpcsdk.ProcessReadyRequest{ClientPort: 1234, GrpcPort: int32(attacker.grpcPort)})
	mustNil(t, err, "ProcessReady")
	if resp.GetStatus() != grpcsdk.GseResponse_ERROR_400 || !strings.Contains(resp.GetErrorMessage(), "does not hold the connection") {
		t.Fatalf("ProcessReady as the victim: %v", resp)
	}
	resp, err = attacker.gse.ProcessEnding(attacker.md(), &grpcsdk.ProcessEndingRequest{})
	mustNil(t, err, "ProcessEnding")
	if resp.GetStatus() != grpcsdk.GseResponse_ERROR_400 || !strings.Contains(resp.GetErrorMessage(), "does not hold the connection") {
		t.Fatalf("ProcessEnding as the victim: %v", resp)
	}
	if ps := e.liveProcesses("f1", store.ProcessActive); len(ps) != 1 || ps[0].GetClientPort() != 7777 {
		t.Fatalf("the victim's process changed: %v", e.processes("f1"))
	}

	// The attacker's own pid, verified on its connection, then reused by
	// another process: the connection does not keep acting as that pid.
	attacker.pid = e.pids.alloc()
	attacker.dial(a, e.pids)
	resp, err = attacker.gse.ReportCustomData(attacker.md(), &grpcsdk.ReportCustomDataRequest{CurrentCustomCount: 1})
	mustNil(t, err, "ReportCustomData")
	if strings.Contains(resp.GetErrorMessage(), "does not hold the connection") {
		t.Fatalf("a call as the connection's own pid: %v", resp)
	}
	e.pids.reuse(attacker.pid)
	resp, err = attacker.gse.ReportCustomData(attacker.md(), &grpcsdk.ReportCustomDataRequest{CurrentCustomCount: 1})
	mustNil(t, err, "ReportCustomData")
	if resp.GetStatus() != grpcsdk.GseResponse_ERROR_400 || !strings.Contains(resp.GetErrorMessage(), "does not hold the connection") {
		t.Fatalf("a call as a reused pid on the old process's connection: %v", resp)
	}

	// A real process on the host that never called the agent.
	other := sleeper(t)
	attacker.pid = other.Process.Pid
	resp, err = attacker.gse.ProcessReady(attacker.md(), &grpcsdk.ProcessReadyRequest{GrpcPort: int32(attacker.grpcPort)})
	mustNil(t, err, "ProcessReady")
	if resp.GetStatus() != grpcsdk.GseResponse_ERROR_400 || !strings.Contains(resp.GetErrorMessage(), "does not hold the connection") {
		t.Fatalf("ProcessReady as pid %d: %v", other.Process.Pid, resp)
	}
	if n := len(e.processes("f1")); n != 1 {
		t.Fatalf("the agent registered another process: %v", e.processes("f1"))
	}
	if err := other.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the other process: %v", err)
	}
}

// TestLogPathsStayInBuildDirs: a process can only declare log files under
// the agent's build directories, and a declared file that is a symlink out
// of them is not read (the agent reads logs as its own user and serves them
// to holders of fleet:read).
func TestLogPathsStayInBuildDirs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.fleet("f1")
	a := e.agent(e.config("a1"))
	g := e.fakeGame(a)
	secret := filepath.Join(t.TempDir(), "ca.key")
	if err := os.WriteFile(secret, []byte("PRIVATE KEY"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		paths []string
		want  string
	}{
		{"outside", []string{secret}, "outside the agent's build directories"},
		{"dot-dot", []string{e.gameDir + "/../" + filepath.Base(filepath.Dir(secret)) + "/ca.key"}, "outside the agent's build directories"},
		{"relative without a working directory", []string{"game.log"}, "outside the agent's build directories"},
		{"too many", make([]string, 17), "at most 16"},
		{"empty", []string{""}, "non-empty path"},
	} {
		var resp *grpcsdk.GseResponse
		eventually(t, 5*time.Second, func() bool {
			var err error
			resp, err = g.gse.ProcessReady(g.md(), &grpcsdk.ProcessReadyRequest{GrpcPort: int32(g.grpcPort), LogPathsToUpload: tc.paths})
			mustNil(t, err, "ProcessReady")
			return !strings.Contains(resp.GetErrorMessage(), "fleet") // the agent may still be fetching its fleets
		}, func() string { return fmt.Sprint(resp) })
		if resp.GetStatus() != grpcsdk.GseResponse_ERROR_400 || !strings.Contains(resp.GetErrorMessage(), tc.want) {
			t.Errorf("%s: ProcessReady %v, want ERROR_400 containing %q", tc.name, resp, tc.want)
		}
	}
	if n := len(e.processes("f1")); n != 0 {
		t.Fatalf("a refused process was registered: %v", e.processes("f1"))
	}

	// Inside as written, outside after the symlink: declared, never read.
	link := filepath.Join(e.gameDir, "game.log")
	if err := os.Symlink(secret, link); err != nil {
		t.Fatal(err)
	}
	resp, err := g.gse.ProcessReady(g.md(), &grpcsdk.ProcessReadyRequest{GrpcPort: int32(g.grpcPort), LogPathsToUpload: []string{link}})
	mustNil(t, err, "ProcessReady")
	if resp.GetStatus() != grpcsdk.GseResponse_OK {
		t.Fatalf("ProcessReady with a log under the build directory: %v", resp)
	}
	var ps []*croupierv1.Process
	eventually(t, 5*time.Second, func() bool { ps = e.liveProcesses("f1", store.ProcessActive); return len(ps) == 1 }, func() string { return "not ready" })
	res, err := e.svc.GetProcessLog(ctx(t), &croupierv1.GetProcessLogRequest{FleetId: "f1", ProcessId: ps[0].GetProcessId(), Path: link})
	if status.Code(err) != codes.PermissionDenied || strings.Contains(string(res.GetData()), "PRIVATE") {
		t.Fatalf("reading a log that links out of the build directories: %v %q", err, res.GetData())
	}

	// A hard link to the secret, and a FIFO that would block an open.
	hard, fifo := filepath.Join(e.gameDir, "hard.log"), filepath.Join(e.gameDir, "fifo.log")
	if err := os.Link(secret, hard); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	resp, err = g.gse.ProcessReady(g.md(), &grpcsdk.ProcessReadyRequest{GrpcPort: int32(g.grpcPort), LogPathsToUpload: []string{hard, fifo}})
	mustNil(t, err, "ProcessReady")
	if resp.GetStatus() != grpcsdk.GseResponse_OK {
		t.Fatalf("ProcessReady with logs under the build directory: %v", resp)
	}
	for path, want := range map[string]codes.Code{hard: codes.PermissionDenied, fifo: codes.FailedPrecondition} {
		res, err := e.svc.GetProcessLog(ctx(t), &croupierv1.GetProcessLogRequest{FleetId: "f1", ProcessId: ps[0].GetProcessId(), Path: path})
		if status.Code(err) != want || strings.Contains(string(res.GetData()), "PRIVATE") {
			t.Errorf("reading %s: %v %q, want %v", filepath.Base(path), err, res.GetData(), want)
		}
	}
}
