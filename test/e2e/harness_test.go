// Package e2e runs Croupier as real processes — server, agents and game
// servers built from this repository — and checks behaviour from outside,
// over real sockets with mTLS.
//
// Tests own every process they start: each runs in its own process group
// and carries an environment marker that its children inherit (game
// servers an agent launches, which outlive their agent by design); a
// test's cleanup kills the group and everything with the marker, also when
// the test fails. TestMain fails the suite if any process it started is
// still alive at the end.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/tlsconf"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/structpb"
)

var bins struct {
	dir                           string
	croupier, gameserver, gsegame string
}

// markerEnv is set on every process the suite starts, to a value unique to
// the process (runID-n); children inherit it — game servers an agent
// launches too — so a process and everything it started can be found in
// /proc and killed at cleanup, and TestMain finds any that escaped.
const markerEnv = "CROUPIER_E2E_PROC"

var (
	runID   = fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())
	procSeq atomic.Int64
)

func newMarker() string { return fmt.Sprintf("%s=%s-%d", markerEnv, runID, procSeq.Add(1)) }

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "croupier-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins.dir = dir
	bins.croupier = filepath.Join(dir, "croupier")
	bins.gameserver = filepath.Join(dir, "gameserver")
	bins.gsegame = filepath.Join(dir, "gsegame")
	root := repoRoot()
	for out, pkg := range map[string]string{bins.croupier: "./cmd/croupier", bins.gameserver: "./examples/gameserver", bins.gsegame: "./examples/gsegame"} {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Dir = root
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build", pkg, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	// Every test kills what it started; anything left is a leak: report it,
	// kill it and fail the suite.
	if left := suiteProcesses(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "e2e: %d processes started by the suite were still running at its end (killed now):\n", len(left))
		for _, pid := range left {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			fmt.Fprintf(os.Stderr, "  pid %d: %s\n", pid, strings.ReplaceAll(string(cmdline), "\x00", " "))
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		code = 1
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// suiteProcesses lists the live processes this run started: those carrying
// its marker, and those running a binary from its bin dir.
func suiteProcesses() []int {
	return scanProcs(func(pid int) bool {
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil && strings.HasPrefix(exe, bins.dir+string(filepath.Separator)) {
			return true
		}
		return hasEnv(pid, markerEnv+"="+runID+"-", true)
	})
}

// scanProcs returns the pids in /proc (other than this process) for which
// match is true; zombies have no environment or exe and never match.
func scanProcs(match func(pid int) bool) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil // no procfs: nothing to scan
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if match(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// hasEnv reports whether pid's environment holds kv (or, with prefix, an
// entry starting with kv).
func hasEnv(pid int, kv string, prefix bool) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return false
	}
	for _, e := range bytes.Split(b, []byte{0}) {
		if string(e) == kv || prefix && bytes.HasPrefix(e, []byte(kv)) {
			return true
		}
	}
	return false
}

// killMarked kills every process carrying marker (a process and what it
// started, also outside its process group: game servers an agent launched
// outlive the agent by design) and waits until they are gone.
func killMarked(t *testing.T, marker string) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := scanProcs(func(pid int) bool { return hasEnv(pid, marker, false) })
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("processes %v (%s) still alive 10s after SIGKILL", left, marker)
			return
		}
		for _, pid := range left {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// proc is a child process whose JSON log lines are collected.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	done chan struct{}

	mu    sync.Mutex
	lines []map[string]any
	raw   []string
	cond  *sync.Cond
}

// start runs bin with args; the process is killed when the test ends.
func start(t *testing.T, name, bin string, args ...string) *proc {
	t.Helper()
	return startEnv(t, name, nil, bin, args...)
}

// startEnv is start with extra environment variables.
func startEnv(t *testing.T, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, done: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	p.cmd = exec.Command(bin, args...)
	marker := newMarker()
	p.cmd.Env = append(append(os.Environ(), env...), marker)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // kill reaches its whole group
	pr, pw := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			var m map[string]any
			_ = json.Unmarshal([]byte(line), &m)
			p.mu.Lock()
			p.raw = append(p.raw, line)
			if m != nil {
				p.lines = append(p.lines, m)
			}
			p.cond.Broadcast()
			p.mu.Unlock()
		}
	}()
	go func() {
		_ = p.cmd.Wait()
		_ = pw.Close()
		close(p.done)
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	}()
	t.Cleanup(func() {
		p.kill()
		killMarked(t, marker)
		if t.Failed() {
			p.mu.Lock()
			t.Logf("---- %s output (last 40 lines) ----\n%s", name, strings.Join(tail(p.raw, 40), "\n"))
			p.mu.Unlock()
		}
	})
	return p
}

func tail(s []string, n int) []string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// waitLog waits for a log line whose msg is msg and returns its fields.
func (p *proc) waitLog(msg string, timeout time.Duration) map[string]any {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	timer := time.AfterFunc(timeout, func() {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	defer timer.Stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := 0; ; {
		for ; i < len(p.lines); i++ {
			if p.lines[i]["msg"] == msg {
				return p.lines[i]
			}
		}
		select {
		case <-p.done:
			p.t.Fatalf("%s exited before logging %q:\n%s", p.name, msg, strings.Join(tail(p.raw, 30), "\n"))
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s did not log %q within %s:\n%s", p.name, msg, timeout, strings.Join(tail(p.raw, 30), "\n"))
		}
		p.cond.Wait()
	}
}

// waitLogAfter waits for a log line whose msg is msg and whose text contains
// substr.
func (p *proc) waitLogAfter(msg, substr string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		p.mu.Lock()
		for _, line := range p.raw {
			if strings.Contains(line, `"msg":"`+msg+`"`) && strings.Contains(line, substr) {
				p.mu.Unlock()
				return
			}
		}
		p.mu.Unlock()
		if time.Now().After(deadline) {
			p.mu.Lock()
			defer p.mu.Unlock()
			p.t.Fatalf("%s did not log %q mentioning %q within %s:\n%s", p.name, msg, substr, timeout, strings.Join(tail(p.raw, 20), "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitLine waits for an output line containing substr.
// output is everything the process printed so far.
func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.raw, "\n")
}

func (p *proc) waitLine(substr string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	timer := time.AfterFunc(timeout, func() {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	defer timer.Stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := 0; ; {
		for ; i < len(p.raw); i++ {
			if strings.Contains(p.raw[i], substr) {
				return
			}
		}
		select {
		case <-p.done:
			p.t.Fatalf("%s exited before printing %q:\n%s", p.name, substr, strings.Join(tail(p.raw, 30), "\n"))
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s did not print %q within %s", p.name, substr, timeout)
		}
		p.cond.Wait()
	}
}

// exitCode waits for the process to exit and returns its exit code.
func (p *proc) exitCode(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("%s did not exit within %s", p.name, timeout)
	}
	return p.cmd.ProcessState.ExitCode()
}

// stop sends SIGTERM and waits for exit.
func (p *proc) stop() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.t.Errorf("%s did not exit within 15s of SIGTERM", p.name)
		p.kill()
	}
}

// kill sends SIGKILL to the process's group and waits for its exit. Game
// servers an agent launched run in groups of their own and survive (an
// agent restarted on the same data dir adopts them); the test's cleanup
// kills them.
func (p *proc) kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// run executes the croupier binary to completion and returns output and exit code.
func run(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	return runIn(t, env, "", args...)
}

// runIn is run with stdin.
func runIn(t *testing.T, env []string, stdin string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins.croupier, args...)
	marker := newMarker()
	cmd.Env = append(append(os.Environ(), env...), marker)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	killMarked(t, marker)
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("croupier %v: %v", args, err)
	}
	return string(out), code
}

// waitFor polls fn until it returns true or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !fn() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// operatorConn dials the server with the operator client certificate.
func operatorConn(t *testing.T, certDir, addr string) *grpc.ClientConn {
	t.Helper()
	cfg, err := tlsconf.ClientConfig(filepath.Join(certDir, "ca.crt"), filepath.Join(certDir, "client.crt"), filepath.Join(certDir, "client.key"), "localhost")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func mustStruct(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestLeakDetection: a process the suite started but lost track of (here a
// detached `sleep`, like a game server whose agent was killed) is found by
// the scan TestMain runs at the end, and killMarked ends it.
func TestLeakDetection(t *testing.T) {
	marker := newMarker()
	cmd := exec.Command("sleep", "60")
	cmd.Env = append(os.Environ(), marker)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Skipf("no sleep binary: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	// Start returns once the exec began, but the kernel sets up the new
	// program's environment a moment later: until then /proc/PID/environ
	// is empty (a CI run under load saw that window).
	for deadline := time.Now().Add(10 * time.Second); !slices.Contains(suiteProcesses(), cmd.Process.Pid); {
		if time.Now().After(deadline) {
			t.Fatalf("the suite scan does not see pid %d carrying %s", cmd.Process.Pid, marker)
		}
		time.Sleep(5 * time.Millisecond)
	}
	killMarked(t, marker)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("killMarked did not end the process")
	}
	if slices.Contains(suiteProcesses(), cmd.Process.Pid) {
		t.Fatal("the scan still lists the killed process")
	}
}
