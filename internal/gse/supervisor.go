package gse

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/gse/launchpath"
)

// slot is one process the runtime configuration asks for: fleet, server
// process entry, launch settings (hashed into the key) and ordinal. A slot
// keeps at most one live process and relaunches it when it ends.
type slot struct {
	key     string
	fleetID string
	spec    *croupierv1.ServerProcess // nil for an adopted slot until fleets are known
	proc    *proc
	// crashes in a row; the restart delay doubles with each.
	crashes    int
	nextLaunch time.Time
	launching  bool
}

// exited schedules the relaunch: at once after a clean end, with backoff
// after a crash (reset by a process that ran StableAfter).
func (s *slot) exited(p *proc, now time.Time, cfg Config) {
	s.proc = nil
	if p.status != statusCrashed {
		s.crashes, s.nextLaunch = 0, now
		return
	}
	if !p.readyAt.IsZero() && now.Sub(p.startedAt) >= cfg.StableAfter {
		s.crashes = 0
	}
	s.crashes++
	d := cfg.RestartBackoffMin
	for i := 1; i < s.crashes && d < cfg.RestartBackoffMax; i++ {
		d *= 2
	}
	s.nextLaunch = now.Add(min(d, cfg.RestartBackoffMax))
}

// desiredSlots lists the slots the fleets ask for.
func desiredSlots(fleets map[string]*croupierv1.Fleet) map[string]*slot {
	out := map[string]*slot{}
	for _, f := range fleets {
		for i, sp := range f.GetRuntimeConfiguration().GetServerProcesses() {
			h := specHash(sp)
			for k := range int(sp.GetConcurrentExecutions()) {
				key := fmt.Sprintf("%s/%d/%s/%d", f.GetFleetId(), i, h, k)
				out[key] = &slot{key: key, fleetID: f.GetFleetId(), spec: sp}
			}
		}
	}
	return out
}

// specHash changes when anything that affects how a process is launched
// changes, so such a change replaces the processes.
func specHash(sp *croupierv1.ServerProcess) string {
	h := sha256.New()
	fmt.Fprintf(h, "%q\x00", sp.GetLaunchPath())
	for _, p := range sp.GetParameters() {
		fmt.Fprintf(h, "%q\x00", p)
	}
	keys := make([]string, 0, len(sp.GetEnvironment()))
	for k := range sp.GetEnvironment() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(h, "%q=%q\x00", k, sp.GetEnvironment()[k])
	}
	return hex.EncodeToString(h.Sum(nil)[:6])
}

// slotFamily is a slot key without its ordinal: fleet, entry and launch
// settings.
func slotFamily(key string) string {
	if i := strings.LastIndexByte(key, '/'); i >= 0 {
		return key[:i]
	}
	return key
}

// tickLoop drives supervision every TickInterval: exits, deadlines, the
// reconciliation of slots with the fleets, and launches.
func (a *Agent) tickLoop(ctx context.Context) {
	t := time.NewTicker(a.cfg.TickInterval)
	defer t.Stop()
	for {
		a.tick()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.kickTick:
		}
	}
}

func (a *Agent) tick() {
	a.checkLiveness()
	now := a.now()
	a.mu.Lock()
	if a.fleetsKnown {
		a.reconcileLocked()
	}
	for _, p := range a.procs {
		switch {
		case p.status == statusLaunching && p.managed && now.Sub(p.startedAt) >= a.cfg.ReadyTimeout:
			a.log.Warn("process did not call ProcessReady in time; killing it", "process", p.id, "ready_timeout", a.cfg.ReadyTimeout)
			p.reason, p.killReason = ReasonReadyTimeout, ReasonReadyTimeout
			a.killLocked(p)
			p.killAt = now.Add(time.Second) // kill again if the exit is not seen by then
		case !p.killAt.IsZero() && !now.Before(p.killAt):
			a.log.Warn("process did not exit in time; killing it", "process", p.id, "reason", p.killReason)
			p.reason = p.killReason
			a.killLocked(p)
			p.killAt = now.Add(time.Second)
		}
	}
	var launch []*slot
	for _, s := range a.slots {
		if a.stopping {
			break
		}
		if s.proc == nil && s.spec != nil && !s.launching && !now.Before(s.nextLaunch) {
			s.launching = true
			launch = append(launch, s)
		}
	}
	dirty := a.stateDirty
	a.stateDirty = false
	a.mu.Unlock()
	for _, s := range launch {
		a.launch(s)
	}
	if dirty || len(launch) > 0 {
		a.saveState()
	}
}

// reconcileLocked matches slots with the fleets: new slots are created
// (and launched by tick), slots no longer asked for are dropped and their
// processes ended per protection policy.
func (a *Agent) reconcileLocked() {
	want := desiredSlots(a.fleets)
	for key, s := range a.slots {
		if w, ok := want[key]; ok {
			s.spec = w.spec
			continue
		}
		if s.proc != nil {
			reason := ReasonConfig
			if _, ok := a.fleets[s.fleetID]; !ok {
				reason = ReasonFleetRemoved
			} else if sameSpec := slotFamily(key); slices.ContainsFunc(slices.Collect(maps.Keys(want)),
				func(k string) bool { return slotFamily(k) == sameSpec }) {
				reason = ReasonScaleIn // same launch settings, fewer executions
			}
			a.log.Info("ending a process its fleet no longer asks for", "process", s.proc.id, "reason", reason)
			a.retireLocked(s.proc, reason)
			s.proc.slot = ""
		}
		delete(a.slots, key)
	}
	for key, w := range want {
		if _, ok := a.slots[key]; !ok {
			a.slots[key] = w
		}
	}
	// Unmanaged processes of fleets that are gone end too.
	for _, p := range a.procs {
		if p.slot == "" && !p.managed && a.fleets[p.fleetID] == nil && a.cfg.DefaultFleetID != p.fleetID {
			a.retireLocked(p, ReasonFleetRemoved)
		}
	}
}

// launch starts the process of a slot. Its stdout and stderr go to a file
// in the data dir, so the process keeps running (and logging) when the
// agent stops; it runs in its own process group, so it neither gets the
// agent's terminal signals nor escapes a kill through its children.
func (a *Agent) launch(s *slot) {
	// A fast child may call ProcessReady before it is in the table;
	// processReady waits on launchMu for the launch to register it.
	a.launchMu.Lock()
	defer a.launchMu.Unlock()
	p, err := a.start(s)
	a.mu.Lock()
	defer a.mu.Unlock()
	s.launching = false
	if err != nil {
		s.crashes++
		d := a.cfg.RestartBackoffMin << min(s.crashes-1, 16)
		if errors.Is(err, launchpath.ErrOutside) {
			d = a.cfg.RestartBackoffMax // configuration, not a passing failure
		}
		s.nextLaunch = a.now().Add(min(d, a.cfg.RestartBackoffMax))
		a.log.Error("cannot launch a game server process", "fleet", s.fleetID, "launch_path", s.spec.GetLaunchPath(), "err", err, "retry_in", min(d, a.cfg.RestartBackoffMax))
		return
	}
	if _, still := a.slots[s.key]; !still || a.stopping || a.closedLocked() {
		// The slot went away while launching: end the newcomer.
		p.killReason = ReasonConfig
		a.procs[p.id], a.byPID[p.pid] = p, p
		a.killLocked(p)
		return
	}
	a.procs[p.id] = p
	a.byPID[p.pid] = p
	s.proc = p
	a.changedLocked(p)
	a.log.Info("launched game server process", "process", p.id, "pid", p.pid, "fleet", s.fleetID, "launch_path", p.launchPath)
}

func (a *Agent) start(s *slot) (*proc, error) {
	if a.cfg.DataDir == "" {
		return nil, errors.New("the agent has no data dir for process logs and state")
	}
	spec := s.spec
	// Checked here, right before the exec, whatever the server accepted:
	// the file started is the resolved one, so a symlink swapped after
	// this check cannot redirect the launch.
	exe, err := launchpath.Resolve(spec.GetLaunchPath(), a.cfg.BuildDirs)
	if err != nil {
		return nil, fmt.Errorf("%w; launching refused", err)
	}
	for k := range spec.GetEnvironment() { // as checked by the server, again here: the agent decides what it runs
		if err := launchpath.CheckEnvName(k); err != nil {
			return nil, fmt.Errorf("%w; launching refused", err)
		}
	}
	outDir := filepath.Join(a.gseDir(), "logs", "out")
	if err := os.MkdirAll(outDir, 0o750); err != nil {
		return nil, err
	}
	outPath := filepath.Join(outDir, fmt.Sprintf("%d-%s.log", a.now().UnixNano(), filepath.Base(spec.GetLaunchPath())))
	out, err := os.OpenFile(outPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	defer out.Close() // the child has its own descriptor
	// Parameters are argv, never a shell command line. argv[0] stays the
	// configured path, as a wrapper script expects.
	cmd := exec.Command(exe, spec.GetParameters()...)
	cmd.Args[0] = spec.GetLaunchPath()
	cmd.Dir = filepath.Dir(spec.GetLaunchPath())
	cmd.Env = append(os.Environ(), AddrEnv+"="+a.Addr(), envFleetID+"="+s.fleetID, "CROUPIER_AGENT_ID="+a.cfg.AgentID,
		envAgentDir+"="+a.launchDir(), envSlot+"="+s.key) // see adoptUnrecorded
	keys := make([]string, 0, len(spec.GetEnvironment()))
	for k := range spec.GetEnvironment() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		cmd.Env = append(cmd.Env, k+"="+spec.GetEnvironment()[k])
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	pid := cmd.Process.Pid
	// The exit is collected with wait4 by pid (checkLiveness), which also
	// works for processes adopted from an earlier agent; release the handle.
	_ = cmd.Process.Release()
	ticks, _ := a.cfg.ProcessInfo(pid)
	return &proc{id: a.processID(pid, ticks), pid: pid, gamePID: pid, startTicks: ticks, gameTicks: ticks, fleetID: s.fleetID, slot: s.key,
		launchPath: spec.GetLaunchPath(), managed: true, status: statusLaunching, healthy: true,
		startedAt: a.now(), stdoutPath: outPath}, nil
}

// checkLiveness records the exit of processes that ended: the agent's own
// children are reaped with wait4 (giving the exit code); others (adopted
// from an earlier agent, or started by hand) are checked in /proc, where a
// different start time means the pid now belongs to someone else.
func (a *Agent) checkLiveness() {
	a.mu.Lock()
	ps := make([]*proc, 0, len(a.procs))
	for _, p := range a.procs {
		ps = append(ps, p)
	}
	a.mu.Unlock()
	for _, p := range ps {
		if p.managed {
			var ws syscall.WaitStatus
			wpid, err := syscall.Wait4(p.pid, &ws, syscall.WNOHANG, nil)
			if wpid == p.pid {
				code := ws.ExitStatus()
				if ws.Signaled() {
					code = 128 + int(ws.Signal())
				}
				a.exited(p, code)
				continue
			}
			if err == nil {
				continue // our child, still running
			}
		}
		if ticks, alive := a.cfg.ProcessInfo(p.pid); !alive || ticks != p.startTicks {
			a.exited(p, -1)
		}
	}
}

func (a *Agent) closedLocked() bool {
	a.lifeMu.Lock()
	defer a.lifeMu.Unlock()
	return a.closed
}
