package gse

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/croupier/croupier/api/tencentcloud/gse/grpcsdk"
)

// stateVersion is the format of gse/state.json.
const stateVersion = 1

// stateFile is what the agent keeps on disk so that the next agent on the
// same data dir adopts the processes still running instead of launching
// duplicates.
type stateFile struct {
	Version   int         `json:"version"`
	AgentID   string      `json:"agent_id"`
	Processes []stateProc `json:"processes"`
}

type stateProc struct {
	ID             string   `json:"id"`
	PID            int      `json:"pid"`
	GamePID        int      `json:"game_pid"`
	StartTicks     uint64   `json:"start_ticks"`
	GameTicks      uint64   `json:"game_ticks,omitempty"` // 0 in files written before it: game_pid is not killed alone
	FleetID        string   `json:"fleet_id"`
	Slot           string   `json:"slot,omitempty"`
	LaunchPath     string   `json:"launch_path,omitempty"`
	Managed        bool     `json:"managed"`
	Status         string   `json:"status"`
	Reason         string   `json:"reason,omitempty"`
	Healthy        bool     `json:"healthy"`
	ClientPort     int      `json:"client_port"`
	GRPCPort       int      `json:"grpc_port"`
	LogPaths       []string `json:"log_paths,omitempty"`
	LogFiles       []string `json:"log_files,omitempty"`
	StdoutPath     string   `json:"stdout_path,omitempty"`
	StartedAtMs    int64    `json:"started_at_ms"`
	ReadyAtMs      int64    `json:"ready_at_ms,omitempty"`
	Ending         bool     `json:"ending,omitempty"`
	Terminating    bool     `json:"terminating,omitempty"`
	KillAtMs       int64    `json:"kill_at_ms,omitempty"`
	KillReason     string   `json:"kill_reason,omitempty"`
	SessionID      string   `json:"session_id,omitempty"`
	SessionStartMs int64    `json:"session_start_ms,omitempty"`
	RetireWhenFree bool     `json:"retire_when_free,omitempty"`
	RetireReason   string   `json:"retire_reason,omitempty"`
	CustomCur      int32    `json:"custom_cur,omitempty"`
	CustomMax      int32    `json:"custom_max,omitempty"`
}

func (a *Agent) statePath() string { return filepath.Join(a.gseDir(), "state.json") }

// saveStateAsync marks the state file stale; the tick loop writes it.
// Callers hold mu.
func (a *Agent) saveStateAsync() {
	a.stateDirty = true
	kick(a.kickTick)
}

// saveState writes the live processes to the state file atomically
// (temporary file, then rename). Callers must not hold mu.
func (a *Agent) saveState() {
	if a.cfg.DataDir == "" {
		return
	}
	a.mu.Lock()
	st := stateFile{Version: stateVersion, AgentID: a.cfg.AgentID}
	for _, p := range a.procs {
		st.Processes = append(st.Processes, stateProc{
			ID: p.id, PID: p.pid, GamePID: p.gamePID, StartTicks: p.startTicks, GameTicks: p.gameTicks, FleetID: p.fleetID, Slot: p.slot,
			LaunchPath: p.launchPath, Managed: p.managed, Status: p.status, Reason: p.reason, Healthy: p.healthy,
			ClientPort: p.clientPort, GRPCPort: p.grpcPort, LogPaths: p.logPaths, LogFiles: p.logFiles,
			StdoutPath: p.stdoutPath, StartedAtMs: msOf(p.startedAt), ReadyAtMs: msOf(p.readyAt), Ending: p.ending,
			Terminating: p.terminating, KillAtMs: msOf(p.killAt), KillReason: p.killReason, SessionID: p.sessionID,
			SessionStartMs: msOf(p.sessionStart), RetireWhenFree: p.retireWhenFree, RetireReason: p.retireReason,
			CustomCur: p.customCur, CustomMax: p.customMax,
		})
	}
	a.mu.Unlock()
	b, err := json.MarshalIndent(st, "", "  ")
	if err == nil {
		err = a.writeState(b)
	}
	if err != nil {
		a.log.Error("saving the process state file failed; a restarted agent may not adopt running processes", "path", a.statePath(), "err", err)
	}
}

func (a *Agent) writeState(b []byte) error {
	a.stateMu.Lock()
	defer a.stateMu.Unlock()
	if err := os.MkdirAll(a.gseDir(), 0o750); err != nil {
		return err
	}
	tmp := a.statePath() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o640); err != nil {
		return err
	}
	return os.Rename(tmp, a.statePath())
}

// adopt takes over the processes an earlier agent on the data dir left
// running: those in the state file (adoptState), then those it launched
// but had not recorded yet (adoptUnrecorded). Called by Start before
// anything else runs.
func (a *Agent) adopt() {
	a.adoptState()
	a.adoptUnrecorded()
}

// adoptUnrecorded takes over, with their slots, the running processes
// launched from this data dir (findLaunched: the environment every launch
// sets) that the state file does not hold: an agent that stopped between a
// launch and the state file's next write (kill -9, power loss) left them,
// and their slots would otherwise launch a second process each. A slot's
// process is the oldest candidate: its children inherit the environment,
// and one of them may lead a process group of its own (a daemon, a
// wrapper's job). Nothing is killed here: a candidate not adopted is left
// as it is, and a slot with a recorded process adopts none.
func (a *Agent) adoptUnrecorded() {
	oldest := map[string]launchedProc{}
	for _, lp := range findLaunched(a.launchDir()) {
		if o, seen := oldest[lp.slot]; !seen || lp.startTicks < o.startTicks || (lp.startTicks == o.startTicks && lp.pid < o.pid) {
			oldest[lp.slot] = lp
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, lp := range oldest {
		if a.byPID[lp.pid] != nil {
			continue
		}
		if s := a.slots[lp.slot]; s != nil && s.proc != nil {
			continue // the slot's recorded process, or a child of it
		}
		p := &proc{id: a.processID(lp.pid, lp.startTicks), pid: lp.pid, gamePID: lp.pid, startTicks: lp.startTicks, gameTicks: lp.startTicks,
			fleetID: lp.fleetID, slot: lp.slot, launchPath: lp.launchPath, managed: true, status: statusLaunching, healthy: true,
			startedAt: a.now()}
		a.procs[p.id], a.byPID[p.pid] = p, p
		a.slots[p.slot] = &slot{key: p.slot, fleetID: p.fleetID, proc: p}
		a.dirty[p.id] = true
		a.stateDirty = true
		a.log.Warn("adopted a game process the state file did not record (the agent stopped right after launching it)",
			"process", p.id, "pid", p.pid, "slot", p.slot)
	}
}

// launchDir is what names this agent's data dir in its processes'
// environment (envAgentDir): its gse directory, absolute.
func (a *Agent) launchDir() string {
	d, err := filepath.Abs(a.gseDir())
	if err != nil {
		return a.gseDir()
	}
	return d
}

// adoptState loads the state file: processes that still run (same pid,
// same start time) are taken over with their slots; the others ended while
// no agent watched and are reported as such.
func (a *Agent) adoptState() {
	b, err := os.ReadFile(a.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	var st stateFile
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	if err == nil && st.Version != stateVersion {
		err = fmt.Errorf("state file version %d, this agent reads %d", st.Version, stateVersion)
	}
	if err != nil {
		a.log.Error("cannot read the process state file; running processes are not adopted", "path", a.statePath(), "err", err)
		return
	}
	now := a.now()
	var gone []*proc
	a.mu.Lock()
	for _, sp := range st.Processes {
		p := &proc{
			id: sp.ID, pid: sp.PID, gamePID: sp.GamePID, startTicks: sp.StartTicks, gameTicks: sp.GameTicks, fleetID: sp.FleetID, slot: sp.Slot,
			launchPath: sp.LaunchPath, managed: sp.Managed, status: sp.Status, reason: sp.Reason, healthy: sp.Healthy,
			clientPort: sp.ClientPort, grpcPort: sp.GRPCPort, logPaths: sp.LogPaths, logFiles: sp.LogFiles,
			stdoutPath: sp.StdoutPath, startedAt: fromMs(sp.StartedAtMs), readyAt: fromMs(sp.ReadyAtMs), ending: sp.Ending,
			terminating: sp.Terminating, killAt: fromMs(sp.KillAtMs), killReason: sp.KillReason, sessionID: sp.SessionID,
			sessionStart: fromMs(sp.SessionStartMs), retireWhenFree: sp.RetireWhenFree, retireReason: sp.RetireReason,
			customCur: sp.CustomCur, customMax: sp.CustomMax,
		}
		if ticks, alive := a.cfg.ProcessInfo(p.pid); !alive || ticks != p.startTicks {
			p.endedAt = now
			p.status = statusCrashed
			if p.ending {
				p.status = statusTerminated
			}
			if p.reason == "" {
				p.reason = "ENDED_WHILE_AGENT_DOWN"
			}
			a.forgetLocked(p)
			a.dirty[p.id] = true
			gone = append(gone, p)
			continue
		}
		if p.grpcPort > 0 && p.status != statusLaunching {
			if conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", p.grpcPort), grpc.WithTransportCredentials(insecure.NewCredentials())); err == nil {
				p.conn, p.client = conn, grpcsdk.NewGameServerGrpcSdkServiceClient(conn)
			}
		}
		a.procs[p.id] = p
		a.byPID[p.pid] = p
		a.byPID[p.gamePID] = p
		if p.slot != "" {
			a.slots[p.slot] = &slot{key: p.slot, fleetID: p.fleetID, proc: p}
		}
		a.log.Info("adopted a running game process", "process", p.id, "pid", p.pid, "status", p.status)
	}
	a.mu.Unlock()
	for _, p := range gone {
		a.log.Info("a game process ended while no agent watched it", "process", p.id, "pid", p.pid)
		a.collectLogs(p)
	}
}

func fromMs(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v)
}
