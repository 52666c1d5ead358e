// Package e2e runs Croupier as real processes — server, agents and game
// servers built from this repository — and checks behaviour from outside,
// over real sockets with mTLS.
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/tlsconf"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/structpb"
)

var bins struct {
	croupier, gameserver, gsegame string
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "croupier-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
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
	_ = os.RemoveAll(dir)
	os.Exit(code)
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
	p.cmd.Env = append(os.Environ(), env...)
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

// kill sends SIGKILL and waits for exit.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
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
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
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
