package gse

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/api/tencentcloud/gse/grpcsdk"
)

// Protection policies (croupierv1.Fleet.protection_policy).
const (
	noProtection        = "NoProtection"
	timeLimitProtection = "TimeLimitProtection"
	fullProtection      = "FullProtection"
)

// processEnding records ProcessEnding: the process stops taking sessions
// and must exit within ExitTimeout.
func (a *Agent) processEnding(p *proc) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if p.ended() {
		return
	}
	p.ending = true
	p.status = statusTerminating
	deadline := a.now().Add(a.cfg.ExitTimeout)
	if p.killAt.IsZero() || deadline.Before(p.killAt) {
		p.killAt, p.killReason = deadline, ReasonExitTimeout
	}
	a.changedLocked(p)
	a.saveStateAsync()
}

// sessionEnded records that the process ended its session; a process that
// was waiting for that (FullProtection) is now ended.
func (a *Agent) sessionEnded(p *proc, sessionID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if p.sessionID != sessionID {
		return
	}
	p.sessionID, p.sessionStart = "", time.Time{}
	if p.retireWhenFree && !p.ended() {
		p.retireWhenFree = false
		a.terminateLocked(p, a.now().Add(a.cfg.TerminationGrace), p.retireReason)
	}
	a.changedLocked(p)
}

// retireLocked ends a process the agent no longer wants (unhealthy, scale
// in, configuration changed) as the fleet's protection policy allows:
//
//   - NoProtection: OnProcessTerminate with terminationTime now +
//     TerminationGrace (5 minutes);
//   - TimeLimitProtection: a process hosting a session is protected for
//     the fleet's time limit from the session's start: terminationTime is
//     the end of that period, or now + grace when it is over or there is no
//     session;
//   - FullProtection: a process hosting a session is not told until the
//     session ends; then as NoProtection.
//
// In every case the process is TERMINATING at once, so the server places
// no new session on it.
func (a *Agent) retireLocked(p *proc, reason string) {
	if p.ended() || p.terminating || p.retireWhenFree {
		return
	}
	now := a.now()
	if p.status == statusLaunching || p.client == nil {
		// Not ready, so there is nothing to ask: end it now.
		p.killReason = reason
		a.killLocked(p)
		return
	}
	deadline := now.Add(a.cfg.TerminationGrace)
	f := a.fleets[p.fleetID]
	if p.sessionID != "" {
		switch f.GetProtectionPolicy() {
		case fullProtection:
			p.status, p.reason = statusTerminating, reason
			p.retireWhenFree, p.retireReason = true, reason
			a.changedLocked(p)
			a.log.Info("process must end but hosts a fully protected session; waiting for the session to end",
				"process", p.id, "session", p.sessionID, "reason", reason)
			return
		case timeLimitProtection:
			if end := p.sessionStart.Add(time.Duration(f.GetProtectionTimeLimitMinutes()) * time.Minute); end.After(now) {
				deadline = end
			}
		}
	}
	a.terminateLocked(p, deadline, reason)
}

// terminateLocked sends OnProcessTerminate(terminationTime) in the
// background and kills the process if it has not exited by then (or within
// ExitTimeout of calling ProcessEnding, whichever comes first).
func (a *Agent) terminateLocked(p *proc, deadline time.Time, reason string) {
	if p.ended() {
		return
	}
	p.status, p.terminating = statusTerminating, true
	if reason != "" {
		p.reason = reason
	}
	if p.killAt.IsZero() || deadline.Before(p.killAt) {
		p.killAt, p.killReason = deadline, reason
	}
	a.changedLocked(p)
	a.saveStateAsync()
	client, id := p.client, p.id
	if client == nil {
		return
	}
	a.goAsync(func(ctx context.Context) {
		cctx, cancel := context.WithTimeout(ctx, a.cfg.HealthTimeout+a.cfg.ExitTimeout)
		defer cancel()
		// GSE's terminationTime is a Unix time in seconds (as GameLift's).
		resp, err := client.OnProcessTerminate(cctx, &grpcsdk.ProcessTerminateRequest{TerminationTime: deadline.Unix()})
		if err != nil || resp.GetStatus() != grpcsdk.GseResponse_OK {
			a.log.Warn("OnProcessTerminate failed; the process is killed at its termination time",
				"process", id, "termination_time", deadline, "err", err, "error_message", resp.GetErrorMessage())
		}
	})
}

// killLocked sends SIGKILL to the process (its process group when the
// agent launched it). The exit is recorded when it is observed.
func (a *Agent) killLocked(p *proc) {
	if p.ended() {
		return
	}
	p.status = statusTerminating
	if p.reason == "" {
		p.reason = p.killReason
	}
	// A pid is never signalled once it names another process than the one
	// recorded (alive with another start time): after a process has
	// exited and been reaped (by this agent or, for one adopted after a
	// restart, by init) its pid can be reused. A launched process's group
	// is signalled also when its leader is gone (or a zombie): Linux does
	// not reuse a pid while a group of that id has members, so the group is
	// still the launched one — its leader's children — or empty (ESRCH).
	target, ok := p.pid, a.sameProcess(p.pid, p.startTicks)
	if p.managed {
		target, ok = -p.pid, !a.reused(p.pid, p.startTicks) // the group: wrappers and their children too
	}
	if ok {
		if err := a.cfg.Kill(target, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			a.log.Warn("kill failed", "process", p.id, "pid", p.pid, "err", err)
		}
	}
	if p.gamePID != p.pid && p.gamePID > 0 && a.sameProcess(p.gamePID, p.gameTicks) {
		_ = a.cfg.Kill(p.gamePID, syscall.SIGKILL)
	}
	a.changedLocked(p)
}

// sameProcess reports whether pid is alive and started at ticks (clock
// ticks since boot), that is, still the process recorded with them.
func (a *Agent) sameProcess(pid int, ticks uint64) bool {
	got, alive := a.cfg.ProcessInfo(pid)
	return alive && got == ticks
}

// reused reports whether pid is alive with another start time than ticks:
// another process than the one recorded.
func (a *Agent) reused(pid int, ticks uint64) bool {
	got, alive := a.cfg.ProcessInfo(pid)
	return alive && got != ticks
}

// exited records the end of a process: TERMINATED when it called
// ProcessEnding, CRASHED otherwise. Its logs are collected and its slot
// relaunches it (with backoff after a crash).
func (a *Agent) exited(p *proc, exitCode int) {
	a.mu.Lock()
	if p.ended() {
		a.mu.Unlock()
		return
	}
	now := a.now()
	p.endedAt = now
	if p.ending {
		p.status = statusTerminated
	} else {
		p.status = statusCrashed
	}
	if p.reason == "" { // an exit the agent did not cause
		p.reason = ReasonExited
		if exitCode > 0 {
			p.reason = fmt.Sprintf("EXIT_CODE_%d", exitCode)
		}
	}
	p.healthy = false
	conn := p.conn
	p.conn, p.client = nil, nil
	if s := a.slots[p.slot]; s != nil && s.proc == p {
		s.exited(p, now, a.cfg)
	}
	evicted := a.forgetLocked(p)
	a.changedLocked(p)
	a.mu.Unlock()
	if conn != nil {
		_ = conn.Close()
	}
	a.log.Info("game process exited", "process", p.id, "pid", p.pid, "status", p.status, "reason", p.reason)
	a.collectLogs(p)
	a.dropLogs(evicted)
	a.saveState()
	kick(a.kickTick)
}

// TerminateProcess serves the server's TerminateProcessCommand: force
// kills at once; otherwise OnProcessTerminate with the given time.
func (a *Agent) TerminateProcess(_ context.Context, cmd *croupierv1.TerminateProcessCommand) (*croupierv1.TerminateProcessResult, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.procs[cmd.GetProcessId()]
	if p == nil {
		return &croupierv1.TerminateProcessResult{}, nil // already gone: nothing to do
	}
	reason := cmd.GetReason()
	if reason == "" {
		reason = ReasonKilled
	}
	if cmd.GetForce() {
		p.reason, p.killReason = reason, reason
		a.killLocked(p)
		return &croupierv1.TerminateProcessResult{}, nil
	}
	deadline := time.UnixMilli(cmd.GetTerminationTimeMs())
	if cmd.GetTerminationTimeMs() == 0 {
		deadline = a.now().Add(a.cfg.TerminationGrace)
	}
	if p.status == statusLaunching || p.client == nil {
		p.killReason = reason
		a.killLocked(p)
		return &croupierv1.TerminateProcessResult{}, nil
	}
	p.retireWhenFree = false
	a.terminateLocked(p, deadline, reason)
	return &croupierv1.TerminateProcessResult{}, nil
}
