package gse

import (
	"context"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
)

// reportTimeout bounds one ReportProcesses call.
const reportTimeout = 10 * time.Second

// reportLoop sends process changes to the server as they happen, and a full
// snapshot on start, on Resync and every FleetSyncInterval. A failed report
// is retried with backoff; nothing is lost, because what to send is
// recomputed from the process table.
func (a *Agent) reportLoop(ctx context.Context) {
	t := time.NewTicker(a.cfg.FleetSyncInterval)
	defer t.Stop()
	wait := time.Duration(0)
	for {
		var retry <-chan time.Time
		if wait > 0 {
			retry = time.After(wait)
		}
		select {
		case <-ctx.Done():
			return
		case <-a.kickReport:
		case <-retry:
		case <-t.C:
			a.mu.Lock()
			a.full = true
			a.mu.Unlock()
		}
		if a.sendReport(ctx) {
			wait = 0
			continue
		}
		wait = min(max(2*wait, 50*time.Millisecond), 5*time.Second)
	}
}

// sendReport sends what is pending; false means it failed and must be
// retried. Sends are serialised (reportMu), so the server receives the
// states of a process in the order they were taken.
func (a *Agent) sendReport(ctx context.Context) bool {
	a.reportMu.Lock()
	defer a.reportMu.Unlock()
	req, ids := a.pendingReport()
	if req == nil {
		return true
	}
	cctx, cancel := context.WithTimeout(ctx, reportTimeout)
	defer cancel()
	if _, err := a.up.ReportProcesses(cctx, req); err != nil {
		a.mu.Lock()
		for _, id := range ids {
			a.dirty[id] = true
		}
		if req.GetFullSnapshot() {
			a.full = true
		}
		a.mu.Unlock()
		if ctx.Err() == nil {
			a.log.Warn("reporting processes to the server failed; retrying", "err", err)
		}
		return false
	}
	return true
}

// pendingReport takes the dirty processes (all, for a full snapshot) into a
// request.
func (a *Agent) pendingReport() (*croupierv1.ReportProcessesRequest, []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.full && len(a.dirty) == 0 {
		return nil, nil
	}
	req := &croupierv1.ReportProcessesRequest{AgentId: a.cfg.AgentID, FullSnapshot: a.full}
	var ids []string
	add := func(p *proc) {
		req.Processes = append(req.Processes, a.report(p))
		ids = append(ids, p.id)
	}
	if a.full {
		for _, p := range a.procs {
			add(p)
		}
		for _, p := range a.history {
			if a.dirty[p.id] {
				add(p)
			}
		}
	} else {
		for id := range a.dirty {
			if p := a.findLocked(id); p != nil {
				add(p)
			}
		}
	}
	a.full = false
	clear(a.dirty)
	return req, ids
}
