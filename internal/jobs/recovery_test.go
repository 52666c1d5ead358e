package jobs

import (
	"context"
	"testing"
	"time"

	agentv1 "github.com/croupier/croupier/api/croupier/agent/v1"
	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/store"
)

// restart is a server restart after kill -9: a new service on the same
// SQLite file, registry and clock; the old one is simply abandoned.
func (h *harness) restart(t *testing.T) {
	t.Helper()
	svc := New(h.svc.cfg, h.st, h.prep, h.caller, h.reg)
	svc.now = h.clock.Now
	if err := svc.Open(t.Context()); err != nil {
		t.Fatalf("Open after restart: %v", err)
	}
	t.Cleanup(svc.wg.Wait)
	h.svc = svc
}

// crashState writes a job row, and events, the way a crash at some point of
// its life leaves them.
func (h *harness) crashState(t *testing.T, id, status, incarnation string, evs ...*croupierv1.JobEvent) {
	t.Helper()
	ctx := context.Background()
	j := &store.Job{ID: id, GameID: game, Env: env, FunctionID: fn, Status: status, Instance: "a/1",
		Payload: []byte(`{}`), Actor: "op:alice", Incarnation: incarnation}
	if err := h.st.Jobs().Create(ctx, j); err != nil {
		t.Fatal(err)
	}
	var batch []store.Event
	for _, e := range evs {
		se, err := toStoreEvent(e)
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, se)
	}
	if err := h.st.Jobs().AppendEvents(ctx, id, batch); err != nil {
		t.Fatal(err)
	}
}

// TestRecoveryAfterCrash: every state a crash can leave a job in is ended
// by the restarted server within the orphan grace (here 10 s on the fake
// clock), with a terminal event a watcher sees — whatever the registry shows
// after the restart. Before the fix a running job without a recorded
// incarnation on a present instance, and a job whose terminal event was
// stored without its status, stayed running for ever.
func TestRecoveryAfterCrash(t *testing.T) {
	t.Parallel()
	const grace = 10 * time.Second
	start := ev(1, croupierv1.EventType_START, "started")
	cases := []struct {
		name        string
		status, inc string
		evs         []*croupierv1.JobEvent
		instances   map[string]string // a's instances after the restart; nil: agent a is gone
		immediate   bool              // ended at the first check, not only after the grace
		wantStatus  string
		wantCode    string
	}{
		{name: "created, never dispatched", status: store.JobPending,
			instances: map[string]string{"1": "inc-1"}, wantStatus: store.JobFailed, wantCode: "NOT_STARTED"},
		{name: "created, agent gone", status: store.JobPending,
			wantStatus: store.JobFailed, wantCode: "NOT_STARTED"},
		{name: "START stored, no incarnation, same instance id back", status: store.JobRunning, evs: []*croupierv1.JobEvent{start},
			instances: map[string]string{"1": "inc-2"}, wantStatus: store.JobFailed, wantCode: "GAME_SERVER_LOST"},
		{name: "START stored, job still pending", status: store.JobPending, evs: []*croupierv1.JobEvent{start},
			instances: map[string]string{"1": "inc-1"}, wantStatus: store.JobFailed, wantCode: "NOT_STARTED"},
		{name: "running, game server restarted", status: store.JobRunning, inc: "inc-1", evs: []*croupierv1.JobEvent{start},
			instances: map[string]string{"1": "inc-2"}, immediate: true, wantStatus: store.JobFailed, wantCode: "GAME_SERVER_LOST"},
		{name: "running, instance gone", status: store.JobRunning, inc: "inc-1", evs: []*croupierv1.JobEvent{start},
			instances: map[string]string{"2": "inc-1"}, wantStatus: store.JobFailed, wantCode: "GAME_SERVER_LOST"},
		{name: "running, agent gone", status: store.JobRunning, inc: "inc-1", evs: []*croupierv1.JobEvent{start},
			wantStatus: store.JobFailed, wantCode: "AGENT_LOST"},
		{name: "DONE stored, status not", status: store.JobRunning, inc: "inc-1",
			evs:       []*croupierv1.JobEvent{start, ev(2, croupierv1.EventType_DONE, "done")},
			instances: map[string]string{"1": "inc-1"}, immediate: true, wantStatus: store.JobCompleted},
		{name: "ERROR stored, status pending", status: store.JobPending,
			evs:       []*croupierv1.JobEvent{start, withData(ev(2, croupierv1.EventType_ERROR, "boom"), map[string]any{"error_code": "E_BOOM"})},
			instances: map[string]string{"1": "inc-1"}, immediate: true, wantStatus: store.JobFailed, wantCode: "E_BOOM"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, func(c *Config) { c.OrphanGrace = grace })
			id := "job_crash"
			h.crashState(t, id, tc.status, tc.inc, tc.evs...)
			if tc.instances == nil {
				h.reg.Remove("a")
			} else {
				h.reg.Remove("a")
				h.setInstances(t, "a", tc.instances)
			}
			h.restart(t)

			h.svc.check()
			if tc.immediate {
				h.wantEnded(t, id, tc.wantStatus, tc.wantCode)
				return
			}
			h.clock.Advance(grace / 2)
			h.svc.check()
			if j := h.job(t, id); store.IsTerminal(j.Status) {
				t.Fatalf("ended (%s %s) before the grace passed", j.Status, j.ErrorCode)
			}
			h.clock.Advance(grace/2 + time.Second)
			h.svc.check()
			h.wantEnded(t, id, tc.wantStatus, tc.wantCode)

			// A watcher gets the whole log and its end.
			var got []*croupierv1.JobEvent
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := h.svc.Stream(ctx, id, 0, func(e *croupierv1.JobEvent) error { got = append(got, e); return nil }); err != nil {
				t.Fatalf("Stream: %v", err)
			}
			if n := len(got); n != len(tc.evs)+1 {
				t.Fatalf("watcher got %d events, want %d", n, len(tc.evs)+1)
			}
		})
	}
}

// TestRecoveryUnconfirmedJobReports: a running job loaded without an
// incarnation that does report after the restart is confirmed and keeps
// running past the grace.
func TestRecoveryUnconfirmedJobReports(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.OrphanGrace = 10 * time.Second })
	id := "job_crash"
	h.crashState(t, id, store.JobRunning, "", ev(1, croupierv1.EventType_START, "started"))
	h.restart(t)
	h.mustReport(t, id, 2, progress(2, 0.5))
	if j := h.job(t, id); j.Incarnation != "inc-1" {
		t.Fatalf("incarnation %q after the report, want the reporting instance's inc-1", j.Incarnation)
	}
	h.clock.Advance(time.Minute)
	h.svc.check()
	if j := h.job(t, id); j.Status != store.JobRunning {
		t.Fatalf("status %s %s; a job that reported after the restart must keep running", j.Status, j.ErrorCode)
	}
}

// TestStartRecordsIncarnation: a START that beats the dispatch's answer
// records the reporting process's incarnation with the status, so a crash
// before the answer still leaves the server knowing which process runs the
// job: when that game server comes back as a new process, the job fails at
// once instead of running for ever.
func TestStartRecordsIncarnation(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.caller.onStart(func(ctx context.Context, _ string, _ *agentv1.StartJobRequest) (*agentv1.StartJobResponse, error) {
		<-ctx.Done() // the server dies before the agent's answer arrives
		return nil, ctx.Err()
	})
	id := h.start(t, nil)
	h.mustReport(t, id, 1, ev(1, croupierv1.EventType_START, "started"))
	if j := h.job(t, id); j.Status != store.JobRunning || j.Incarnation != "inc-1" {
		t.Fatalf("after START: status %q incarnation %q; want running inc-1", j.Status, j.Incarnation)
	}
	h.setInstances(t, "a", map[string]string{"1": "inc-2"})
	h.restart(t)
	h.svc.check()
	h.wantEnded(t, id, store.JobFailed, "GAME_SERVER_LOST")
}
