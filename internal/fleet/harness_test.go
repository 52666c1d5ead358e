package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/fleet"
	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/store/storetest"
)

// clock is a settable clock shared by the service and its store.
type clock struct{ ms atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ms.Store(time.Now().UnixMilli())
	return c
}

func (c *clock) Now() time.Time          { return time.UnixMilli(c.ms.Load()) }
func (c *clock) Advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }

// Start behaviours of the fake agent's processes.
const (
	startActivate = iota // activate from inside the callback, answer OK (the GSE sample)
	startIgnore          // answer OK without activating
	startRefuse          // answer the GseResponse ERROR_400
	startFail            // the agent is unreachable
)

// fakeAgents plays every agent: it answers commands the way gse.Agent
// would, calling the agent API back re-entrantly to activate.
type fakeAgents struct {
	api  *fleet.AgentAPI
	mode atomic.Int32

	mu         sync.Mutex
	starts     []*croupierv1.StartGameServerSessionCommand
	terminates []*croupierv1.TerminateProcessCommand
	syncs      int
}

func (f *fakeAgents) StartGameServerSession(ctx context.Context, agentID string, cmd *croupierv1.StartGameServerSessionCommand) (*croupierv1.StartGameServerSessionResult, error) {
	f.mu.Lock()
	f.starts = append(f.starts, cmd)
	f.mu.Unlock()
	switch f.mode.Load() {
	case startActivate:
		_, err := f.api.ActivateGameServerSession(ctx, &croupierv1.ActivateGameServerSessionRequest{
			AgentId: agentID, ProcessId: cmd.GetProcessId(),
			GameServerSessionId: cmd.GetGameServerSession().GetGameServerSessionId(),
			MaxPlayers:          cmd.GetGameServerSession().GetMaxPlayers(),
		})
		if err != nil {
			return &croupierv1.StartGameServerSessionResult{ErrorMessage: err.Error()}, nil
		}
		return &croupierv1.StartGameServerSessionResult{Ok: true}, nil
	case startIgnore:
		return &croupierv1.StartGameServerSessionResult{Ok: true}, nil
	case startRefuse:
		return &croupierv1.StartGameServerSessionResult{ErrorMessage: "not today"}, nil
	}
	return nil, status.Error(codes.Unavailable, "agent is not connected")
}

func (f *fakeAgents) TerminateProcess(_ context.Context, _ string, cmd *croupierv1.TerminateProcessCommand) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.terminates = append(f.terminates, cmd)
	return nil
}

func (f *fakeAgents) FetchProcessLog(_ context.Context, agentID string, cmd *croupierv1.FetchProcessLogCommand) (*croupierv1.FetchProcessLogResult, error) {
	if cmd.GetPath() != "/logs/game.log" {
		return nil, status.Errorf(codes.NotFound, "process %s has no log %s", cmd.GetProcessId(), cmd.GetPath())
	}
	return &croupierv1.FetchProcessLogResult{Data: []byte("hello from " + agentID), Size: 15, Eof: true}, nil
}

func (f *fakeAgents) SyncFleets(context.Context, string, string) {
	f.mu.Lock()
	f.syncs++
	f.mu.Unlock()
}

func (f *fakeAgents) terminated() []*croupierv1.TerminateProcessCommand {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*croupierv1.TerminateProcessCommand(nil), f.terminates...)
}

type harness struct {
	svc    *fleet.Service
	api    *fleet.AgentAPI
	st     *store.Store
	agents *fakeAgents
	clock  *clock
}

// newHarness starts a service on a fresh store of the driver with a fast
// sweeper and scope g/prod declared.
func newHarness(t *testing.T, driver string) *harness {
	t.Helper()
	c := newClock()
	st := storetest.Open(t, driver, storetest.WithClock(c.Now))
	h := &harness{st: st, agents: &fakeAgents{}, clock: c}
	svc, err := fleet.New(fleet.Config{Store: st, Agents: h.agents, Now: c.Now, SweepInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	svc.Start()
	t.Cleanup(svc.Close)
	h.svc, h.api = svc, svc.AgentAPI()
	h.agents.api = h.api
	if err := st.Scopes().Declare(ctx(t), "g", "prod"); err != nil {
		t.Fatal(err)
	}
	return h
}

// each runs fn on SQLite and PostgreSQL.
func each(t *testing.T, fn func(t *testing.T, h *harness)) {
	t.Helper()
	for _, d := range []string{store.DriverSQLite, store.DriverPostgres} {
		t.Run(d, func(t *testing.T) { fn(t, newHarness(t, d)) })
	}
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// fleetFor creates fleet id in g/prod; mods adjust the definition first.
func (h *harness) fleet(t *testing.T, id string, mods ...func(*croupierv1.Fleet)) *croupierv1.Fleet {
	t.Helper()
	f := &croupierv1.Fleet{FleetId: id, GameId: "g", Env: "prod"}
	for _, m := range mods {
		m(f)
	}
	out, err := h.svc.CreateFleet(ctx(t), f)
	if err != nil {
		t.Fatalf("create fleet: %v", err)
	}
	return out
}

// processes reports n ready, healthy processes "<fleet>-<agent>-<i>" of
// agent on a fleet.
func (h *harness) processes(t *testing.T, fleetID, agent string, n int) []string {
	t.Helper()
	var ids []string
	var ps []*croupierv1.Process
	for i := range n {
		id := fmt.Sprintf("%s-%s-%d", fleetID, agent, i)
		ids = append(ids, id)
		ps = append(ps, &croupierv1.Process{ProcessId: id, FleetId: fleetID, GameId: "g", Env: "prod", Pid: int32(1000 + i),
			Status: store.ProcessActive, Healthy: true, IpAddress: "10.1.2.3", ClientPort: int32(7000 + i), GrpcPort: int32(9000 + i),
			LogPaths: []string{"/logs/game.log"}, ReadyTimeMs: int64(i + 1)})
	}
	if _, err := h.api.ReportProcesses(ctx(t), &croupierv1.ReportProcessesRequest{AgentId: agent, Processes: ps}); err != nil {
		t.Fatalf("report processes: %v", err)
	}
	return ids
}

func (h *harness) session(t *testing.T, id string) *croupierv1.GameServerSession {
	t.Helper()
	g, err := h.svc.GetGameServerSession(ctx(t), id)
	if err != nil {
		t.Fatalf("get session %s: %v", id, err)
	}
	return g
}

// waitStatus polls a session until it has the status (5 s at most).
func (h *harness) waitStatus(t *testing.T, id, want string) *croupierv1.GameServerSession {
	t.Helper()
	var g *croupierv1.GameServerSession
	eventually(t, 5*time.Second, func() bool {
		g = h.session(t, id)
		return g.GetStatus() == want
	}, func() string { return fmt.Sprintf("session %s is %s, want %s", id, g.GetStatus(), want) })
	return g
}

// eventually polls cond every few milliseconds until it holds or the
// timeout passes.
func eventually(t *testing.T, timeout time.Duration, cond func() bool, msg func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: %s", timeout, msg())
		}
		select {
		case <-t.Context().Done():
			t.Fatal("test context ended")
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// wantErr checks a fleet error's gRPC code and stable code.
func wantErr(t *testing.T, err error, c codes.Code, code string) *fleet.Error {
	t.Helper()
	var fe *fleet.Error
	if !errors.As(err, &fe) {
		t.Fatalf("got %v (%T), want a fleet error %v/%s", err, err, c, code)
	}
	if fe.GRPC != c || fe.Code != code {
		t.Fatalf("got %v/%s (%s), want %v/%s", fe.GRPC, fe.Code, fe.Msg, c, code)
	}
	return fe
}

// wantStatus checks a gRPC status error from the agent API.
func wantStatus(t *testing.T, err error, c codes.Code) {
	t.Helper()
	if status.Code(err) != c {
		t.Fatalf("got %v, want status %v", err, c)
	}
}

func mustNil(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
