package gse_test

import (
	"fmt"
	"testing"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/api/tencentcloud/gse/grpcsdk"
	"github.com/croupier/croupier/internal/fleet"
	"github.com/croupier/croupier/internal/store"
)

// readyGame starts a fake game on a new agent for fleet f1 (created with
// mods) and waits until the server has it ACTIVE.
func readyGame(t *testing.T, e *env, grace time.Duration, mods ...func(*croupierv1.Fleet)) *fakeGame {
	t.Helper()
	e.fleet("f1", mods...)
	cfg := e.config("a1")
	cfg.TerminationGrace = grace
	g := e.fakeGame(e.agent(cfg))
	g.ready()
	eventually(t, 5*time.Second, func() bool { return len(e.liveProcesses("f1", store.ProcessActive)) == 1 }, func() string { return "not ready" })
	return g
}

func unhealthyOnServer(e *env) func() bool {
	return func() bool {
		ps := e.processes("f1")
		return len(ps) == 1 && !ps[0].GetHealthy() && ps[0].GetStatus() == store.ProcessTerminating
	}
}

func TestUnhealthyWithoutProtection(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"healthStatus=false", "timeouts"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			if how == "timeouts" {
				// Short enough that three hung checks end the process
				// quickly, long enough that the healthy checks before the
				// hang do not time out on a loaded machine.
				e.healthTimeout = 500 * time.Millisecond
			}
			g := readyGame(t, e, 500*time.Millisecond)
			start := time.Now()
			if how == "timeouts" {
				g.hangHC.Store(true)
			} else {
				g.healthy.Store(false)
			}
			eventually(t, 5*time.Second, unhealthyOnServer(e), func() string { return fmt.Sprint(e.processes("f1")) })
			// No new session goes to an unhealthy process.
			_, err := e.svc.CreateGameServerSession(ctx(t), &croupierv1.CreateGameServerSessionRequest{FleetId: "f1"})
			if fe := (*fleet.Error)(nil); !asFleet(err, &fe) || fe.Code != fleet.CodeNoCapacity {
				t.Fatalf("create on an unhealthy fleet: %v", err)
			}
			eventually(t, 5*time.Second, func() bool { return len(g.terminations()) == 1 }, func() string { return "no OnProcessTerminate" })
			// terminationTime: now + grace, in Unix seconds.
			if tt := g.terminations()[0]; tt < start.Add(500*time.Millisecond).Unix()-1 || tt > time.Now().Add(500*time.Millisecond).Unix()+1 {
				t.Fatalf("terminationTime %d, want about now+0.5s (%d)", tt, time.Now().Unix())
			}
			// The process ignores it: killed at the termination time.
			eventually(t, 5*time.Second, func() bool { return len(e.liveProcesses("f1", store.ProcessCrashed)) == 1 },
				func() string { return fmt.Sprint(e.processes("f1")) })
			if p := e.processes("f1")[0]; p.GetStatusReason() != "UNHEALTHY" {
				t.Fatalf("reason %q", p.GetStatusReason())
			}
		})
	}
}

func TestUnhealthyFullProtection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := readyGame(t, e, time.Minute, func(f *croupierv1.Fleet) { f.ProtectionPolicy = fleet.FullProtection })
	gss, err := e.svc.CreateGameServerSession(ctx(t), &croupierv1.CreateGameServerSessionRequest{FleetId: "f1", MaxPlayers: 2})
	mustNil(t, err, "create")
	e.waitSession(gss.GetGameServerSessionId(), store.GSSActive)
	g.healthy.Store(false)
	eventually(t, 5*time.Second, unhealthyOnServer(e), func() string { return fmt.Sprint(e.processes("f1")) })
	// Protected: the running session is not ended, however long we look
	// (twenty more health intervals).
	deadline := time.Now().Add(400 * time.Millisecond)
	for time.Now().Before(deadline) {
		if n := len(g.terminations()); n != 0 {
			t.Fatalf("OnProcessTerminate sent to a fully protected process with a live session")
		}
		time.Sleep(20 * time.Millisecond) // observation window, not synchronisation
	}
	if s := e.session(gss.GetGameServerSessionId()); s.GetStatus() != store.GSSActive {
		t.Fatalf("protected session ended: %v", s)
	}
	// The session ends by itself; then the process is told to end.
	resp, err := g.gse.TerminateGameServerSession(g.md(), &grpcsdk.TerminateGameServerSessionRequest{GameServerSessionId: gss.GetGameServerSessionId()})
	mustNil(t, err, "terminate session")
	if resp.GetStatus() != grpcsdk.GseResponse_OK {
		t.Fatalf("terminate session: %v", resp)
	}
	eventually(t, 5*time.Second, func() bool { return len(g.terminations()) == 1 }, func() string { return "no OnProcessTerminate after the session ended" })
	if tt := g.terminations()[0]; tt < time.Now().Add(50*time.Second).Unix() {
		t.Fatalf("terminationTime %d, want about now + the grace of a minute", tt)
	}
}

func TestUnhealthyTimeLimitProtection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := readyGame(t, e, time.Minute, func(f *croupierv1.Fleet) {
		f.ProtectionPolicy, f.ProtectionTimeLimitMinutes = fleet.TimeLimitProtection, 10
	})
	before := time.Now()
	gss, err := e.svc.CreateGameServerSession(ctx(t), &croupierv1.CreateGameServerSessionRequest{FleetId: "f1", MaxPlayers: 2})
	mustNil(t, err, "create")
	e.waitSession(gss.GetGameServerSessionId(), store.GSSActive)
	g.healthy.Store(false)
	eventually(t, 5*time.Second, func() bool { return len(g.terminations()) == 1 }, func() string { return "no OnProcessTerminate" })
	// terminationTime is the end of the protection period: session start
	// + 10 minutes.
	tt := g.terminations()[0]
	if lo, hi := before.Add(10*time.Minute).Unix()-1, time.Now().Add(10*time.Minute).Unix()+1; tt < lo || tt > hi {
		t.Fatalf("terminationTime %d, want in [%d, %d]", tt, lo, hi)
	}
}
