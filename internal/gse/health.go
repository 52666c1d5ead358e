package gse

import (
	"context"
	"time"

	"github.com/croupier/croupier/api/tencentcloud/gse/grpcsdk"
)

// healthLoop calls OnHealthCheck on every ready process each
// HealthInterval. HealthFailures failures or timeouts in a row make the
// process unhealthy for good: it gets no new session and is ended as its
// fleet's protection policy allows.
func (a *Agent) healthLoop(ctx context.Context) {
	t := time.NewTicker(a.cfg.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.checkHealth()
		}
	}
}

func (a *Agent) checkHealth() {
	a.mu.Lock()
	type check struct {
		p      *proc
		client grpcsdk.GameServerGrpcSdkServiceClient
	}
	var due []check
	for _, p := range a.procs {
		// One check per process at a time: a hung process costs one
		// goroutine, not one per interval.
		if p.status == statusActive && p.healthy && p.client != nil && !p.healthBusy {
			p.healthBusy = true
			due = append(due, check{p, p.client})
		}
	}
	a.mu.Unlock()
	for _, c := range due {
		p, client := c.p, c.client
		a.goAsync(func(ctx context.Context) {
			cctx, cancel := context.WithTimeout(ctx, a.cfg.HealthTimeout)
			defer cancel()
			resp, err := client.OnHealthCheck(cctx, &grpcsdk.HealthCheckRequest{})
			if ctx.Err() != nil {
				return
			}
			a.healthResult(p, err == nil && resp.GetHealthStatus(), err)
		})
	}
}

func (a *Agent) healthResult(p *proc, healthy bool, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p.healthBusy = false
	if p.status != statusActive || !p.healthy {
		return
	}
	if healthy {
		p.failures = 0
		return
	}
	p.failures++
	a.log.Debug("health check failed", "process", p.id, "failures", p.failures, "err", err)
	if p.failures < a.cfg.HealthFailures {
		return
	}
	p.healthy = false
	a.log.Warn("process is unhealthy", "process", p.id, "failures", p.failures, "err", err)
	a.changedLocked(p)
	a.retireLocked(p, ReasonUnhealthy)
}
