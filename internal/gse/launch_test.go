package gse_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
)

// TestLaunchOnlyFromBuildDirs: the agent starts nothing outside its build
// directories, however the fleet names it — /bin/sh itself, or a symlink
// in a build directory that points at it — even when the server accepted
// the fleet because it did not know the agent's directories yet. The
// allowed process of the same fleet runs.
func TestLaunchOnlyFromBuildDirs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	builds := t.TempDir()
	mustNil(t, os.Symlink("/bin/sh", filepath.Join(builds, "sh")), "symlink")
	proof := filepath.Join(t.TempDir(), "ran")
	script := "id > " + proof
	// Created before the agent reports its directories: the server cannot
	// refuse it, so the agent must.
	e.fleet("f1", func(f *croupierv1.Fleet) {
		f.RuntimeConfiguration = &croupierv1.RuntimeConfiguration{GameServerSessionActivationTimeoutSeconds: 30,
			ServerProcesses: []*croupierv1.ServerProcess{
				{LaunchPath: "/bin/sh", Parameters: []string{"-c", script}, ConcurrentExecutions: 1},
				{LaunchPath: filepath.Join(builds, "sh"), Parameters: []string{"-c", script}, ConcurrentExecutions: 1},
				{LaunchPath: gsegameBin, ConcurrentExecutions: 1},
			}}
	})
	logs := newLogRecorder()
	cfg := e.config("a1")
	cfg.BuildDirs = append(cfg.BuildDirs, builds)
	cfg.Logger = slog.New(logs)
	e.agent(cfg)

	e.waitActive(1)
	refused := func() bool {
		return logs.count("cannot launch", `"/bin/sh" is outside the build directories`) >= 2 &&
			logs.count("cannot launch", "resolves to") >= 2
	}
	eventually(t, 20*time.Second, refused, logs.dump)
	if _, err := os.Stat(proof); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the shell ran: %s exists (%v)", proof, err)
	}
	if ps := e.processes("f1"); len(ps) != 1 || ps[0].GetLaunchPath() != gsegameBin {
		t.Fatalf("processes %v, want only the gsegame one", ps)
	}

	// Once the agent reported its directories, the server refuses such a
	// fleet at once.
	_, err := e.svc.CreateFleet(ctx(t), &croupierv1.Fleet{FleetId: "f2", GameId: "g", Env: "prod",
		RuntimeConfiguration: &croupierv1.RuntimeConfiguration{ServerProcesses: []*croupierv1.ServerProcess{
			{LaunchPath: "/bin/sh", Parameters: []string{"-c", script}, ConcurrentExecutions: 1}}}})
	if err == nil || !strings.Contains(err.Error(), "outside the build directories of agent a1") {
		t.Fatalf("CreateFleet /bin/sh after the agent reported: %v", err)
	}
}

// logRecorder is a slog.Handler that keeps every record as one line.
type logRecorder struct {
	mu    *sync.Mutex
	lines *[]string
	attrs string
}

func newLogRecorder() *logRecorder { return &logRecorder{mu: &sync.Mutex{}, lines: &[]string{}} }

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message + l.attrs)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	*l.lines = append(*l.lines, b.String())
	return nil
}

func (l *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	c := *l
	for _, a := range as {
		c.attrs += fmt.Sprintf(" %s=%v", a.Key, a.Value)
	}
	return &c
}

func (l *logRecorder) WithGroup(string) slog.Handler { return l }

// count returns how many records contain every one of subs.
func (l *logRecorder) count(subs ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range *l.lines {
		all := true
		for _, s := range subs {
			all = all && strings.Contains(line, s)
		}
		if all {
			n++
		}
	}
	return n
}

func (l *logRecorder) dump() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return "agent log:\n" + strings.Join(*l.lines, "\n")
}

// TestLaunchRefusesLoaderEnvironment: a fleet that sets an environment
// variable making the loader or a shell run other code (here BASH_ENV on a
// bash wrapper inside a build directory, which bash expands and runs) is
// not launched by the agent, even when the fleet reached it without the
// server's check (written to the store directly, as an older server
// would have); the allowed process of the same fleet runs.
func TestLaunchRefusesLoaderEnvironment(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	builds := t.TempDir()
	wrapper := filepath.Join(builds, "wrapper.sh")
	mustNil(t, os.WriteFile(wrapper, []byte("#!/bin/bash\nexec sleep 60\n"), 0o755), "wrapper")
	proof := filepath.Join(t.TempDir(), "ran")
	f := &croupierv1.Fleet{FleetId: "f1", GameId: "g", Env: "prod", RuntimeConfiguration: &croupierv1.RuntimeConfiguration{
		GameServerSessionActivationTimeoutSeconds: 30,
		ServerProcesses: []*croupierv1.ServerProcess{
			{LaunchPath: wrapper, ConcurrentExecutions: 1, Environment: map[string]string{"BASH_ENV": "$(id > " + proof + ")"}},
			{LaunchPath: gsegameBin, ConcurrentExecutions: 1},
		}}}
	// The server refuses it...
	if _, err := e.svc.CreateFleet(ctx(t), f); err == nil || !strings.Contains(err.Error(), "BASH_ENV is not allowed") {
		t.Fatalf("CreateFleet with BASH_ENV: %v", err)
	}
	// ...and the agent does not run it if it is stored anyway.
	mustNil(t, e.st.Fleets().Create(ctx(t), f), "store fleet")
	logs := newLogRecorder()
	cfg := e.config("a1")
	cfg.BuildDirs = append(cfg.BuildDirs, builds)
	cfg.Logger = slog.New(logs)
	e.agent(cfg)
	e.waitActive(1)
	eventually(t, 20*time.Second, func() bool { return logs.count("cannot launch", "BASH_ENV is not allowed") >= 2 }, logs.dump)
	if _, err := os.Stat(proof); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("BASH_ENV ran: %s exists (%v)", proof, err)
	}
}
