package jobs

import (
	"context"
	"strings"
	"testing"
	"time"

	agentv1 "github.com/croupier/croupier/api/croupier/agent/v1"
	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/store"
)

func TestInstancesDeparted(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	onOne := h.startRunning(t) // a/1, incarnation inc-1
	h.mustReport(t, onOne, 1, ev(1, croupierv1.EventType_START, "s"))
	h.prep.setTarget("a", "2")
	onTwo := h.startRunning(t)

	// A departure of another incarnation (an older process) is not this job's.
	h.svc.InstancesDeparted("a", map[string]string{"1": "inc-0"})
	// Another agent's instance with the same id is not this job's either.
	h.svc.InstancesDeparted("b", map[string]string{"1": "inc-1"})
	if j := h.job(t, onOne); j.Status != store.JobRunning {
		t.Fatalf("an unrelated departure ended the job: %s", j.Status)
	}

	h.svc.InstancesDeparted("a", map[string]string{"1": "inc-1"})
	j := h.wantEnded(t, onOne, store.JobFailed, "GAME_SERVER_LOST")
	if !strings.Contains(j.Error, "a/1 exited") || j.LastSeq != 2 {
		t.Fatalf("error %q last_seq %d", j.Error, j.LastSeq)
	}
	if j := h.job(t, onTwo); j.Status != store.JobRunning {
		t.Fatalf("the job on a/2 is %s after a/1 departed", j.Status)
	}
	// A departure without incarnation (old agents) matches any.
	h.svc.InstancesDeparted("a", map[string]string{"2": ""})
	h.wantEnded(t, onTwo, store.JobFailed, "GAME_SERVER_LOST")
}

// TestCheckRestartedIncarnation: the instance is back under the same id but
// as a new process; the old process's job cannot be running any more.
func TestCheckRestartedIncarnation(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.startRunning(t)
	h.svc.check()
	if j := h.job(t, id); j.Status != store.JobRunning {
		t.Fatalf("a healthy job became %s", j.Status)
	}
	h.setInstances(t, "a", map[string]string{"1": "inc-2", "2": "inc-1"})
	h.svc.check()
	j := h.wantEnded(t, id, store.JobFailed, "GAME_SERVER_LOST")
	if !strings.Contains(j.Error, "restarted") {
		t.Fatalf("error %q does not say the game server restarted", j.Error)
	}
}

// TestCheckInstanceMissing: the agent is there but the instance is not; the
// job fails once the instance has been away for OrphanGrace, unless it
// comes back first.
func TestCheckInstanceMissing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.OrphanGrace = time.Minute })
	id := h.startRunning(t)

	h.setInstances(t, "a", map[string]string{"2": "inc-1"}) // a/1 gone
	h.svc.check()                                           // notices
	h.clock.Advance(50 * time.Second)
	h.svc.check()
	h.setInstances(t, "a", map[string]string{"1": "inc-1", "2": "inc-1"}) // back in time
	h.svc.check()
	h.clock.Advance(50 * time.Second)
	h.svc.check()
	if j := h.job(t, id); j.Status != store.JobRunning {
		t.Fatalf("an instance that came back within the grace lost its job: %s", j.Status)
	}

	h.setInstances(t, "a", map[string]string{"2": "inc-1"})
	h.svc.check()
	h.clock.Advance(time.Minute - time.Second)
	h.svc.check()
	if j := h.job(t, id); j.Status != store.JobRunning {
		t.Fatalf("failed before the grace ran out: %s", j.Status)
	}
	h.clock.Advance(2 * time.Second)
	h.svc.check()
	j := h.wantEnded(t, id, store.JobFailed, "GAME_SERVER_LOST")
	if !strings.Contains(j.Error, "has not reconnected") {
		t.Fatalf("error %q", j.Error)
	}
}

// TestCheckAgentAbsent: a disconnected agent (restart, network blip) gets
// OrphanGrace to come back before its jobs fail with AGENT_LOST.
func TestCheckAgentAbsent(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.OrphanGrace = 30 * time.Second })
	id := h.startRunning(t)

	h.reg.Remove("a")
	h.svc.check()
	h.clock.Advance(20 * time.Second)
	h.svc.check()
	h.setInstances(t, "a", map[string]string{"1": "inc-1"}) // reconnected
	h.svc.check()
	h.reg.Remove("a")
	h.svc.check()
	h.clock.Advance(20 * time.Second) // 40s since the first disconnect, 20s since the second
	h.svc.check()
	if j := h.job(t, id); j.Status != store.JobRunning {
		t.Fatalf("the grace was not restarted by the reconnect: %s", j.Status)
	}
	h.clock.Advance(11 * time.Second)
	h.svc.check()
	j := h.wantEnded(t, id, store.JobFailed, "AGENT_LOST")
	if !strings.Contains(j.Error, "agent a has been disconnected") {
		t.Fatalf("error %q", j.Error)
	}
	if !strings.Contains(string(h.lastEvent(t, id).Data), `"error_code":"AGENT_LOST"`) {
		t.Fatalf("terminal event data %s", h.lastEvent(t, id).Data)
	}
}

// TestCheckNeverStarted: a job whose dispatch never completed fails with
// NOT_STARTED after a minute.
func TestCheckNeverStarted(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.caller.onStart(func(ctx context.Context, _ string, _ *agentv1.StartJobRequest) (*agentv1.StartJobResponse, error) {
		<-ctx.Done() // the agent never answers
		return nil, ctx.Err()
	})
	id := h.start(t, nil)
	h.svc.check()
	h.clock.Advance(50 * time.Second)
	h.svc.check()
	if j := h.job(t, id); j.Status != store.JobPending {
		t.Fatalf("status %s before a minute passed", j.Status)
	}
	h.clock.Advance(15 * time.Second)
	h.svc.check()
	h.wantEnded(t, id, store.JobFailed, "NOT_STARTED")
}

// TestRunChecksAndPrunes runs the real loop: it fails an orphaned job on its
// own and prunes old finished jobs, and returns when its context ends.
func TestRunChecksAndPrunes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) {
		c.CheckInterval, c.OrphanGrace, c.Retention, c.KeepJobs = 5*time.Millisecond, 20*time.Millisecond, time.Hour, 0
	})
	h.svc.now = time.Now // the loop runs on real time here
	old := &store.Job{ID: "job_old", GameID: game, Env: env, FunctionID: fn, Status: store.JobCompleted,
		CreatedAt: time.Now().Add(-3 * time.Hour), EndedAt: time.Now().Add(-2 * time.Hour)}
	if err := h.st.Jobs().Create(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	id := h.startRunning(t)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.svc.Run(ctx) }()
	h.reg.Remove("a")
	h.waitStatus(t, id, store.JobFailed)
	h.wantEnded(t, id, store.JobFailed, "AGENT_LOST")
	waitFor(t, 5*time.Second, "the old job to be pruned", func() bool {
		_, err := h.st.Jobs().Get(context.Background(), "job_old")
		return err != nil
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
