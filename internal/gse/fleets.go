package gse

import (
	"context"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
)

// fleetLoop keeps the agent's fleets (runtime configurations and
// protection policies) in step with the server: at start, when told
// (SyncFleets, Resync), and every FleetSyncInterval.
func (a *Agent) fleetLoop(ctx context.Context) {
	t := time.NewTicker(a.cfg.FleetSyncInterval)
	defer t.Stop()
	wait := time.Duration(0)
	for {
		if err := a.syncFleets(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			wait = min(max(2*wait, 100*time.Millisecond), a.cfg.FleetSyncInterval)
			a.log.Warn("fetching fleets from the server failed; retrying", "err", err, "in", wait)
		} else {
			wait = 0
		}
		var retry <-chan time.Time
		if wait > 0 {
			retry = time.After(wait)
		}
		select {
		case <-ctx.Done():
			return
		case <-a.kickFleets:
		case <-t.C:
		case <-retry:
		}
	}
}

func (a *Agent) syncFleets(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, reportTimeout)
	defer cancel()
	res, err := a.up.GetAgentFleets(cctx, &croupierv1.GetAgentFleetsRequest{
		AgentId: a.cfg.AgentID, GameId: a.cfg.GameID, Env: a.cfg.Env, Labels: a.cfg.Labels,
		BuildDirs: a.cfg.BuildDirs, // so the server refuses fleets this agent would not launch
	})
	if err != nil {
		return err
	}
	fleets := make(map[string]*croupierv1.Fleet, len(res.GetFleets()))
	for _, f := range res.GetFleets() {
		fleets[f.GetFleetId()] = f
	}
	a.mu.Lock()
	a.fleets, a.fleetsKnown = fleets, true
	a.mu.Unlock()
	kick(a.kickTick)
	return nil
}
