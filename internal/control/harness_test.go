package control

// Internal tests: they set Service.now and Assignments.now to drive expiry
// and caching with a fake clock; everything else goes through the exported
// methods.

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/principal"
	"github.com/croupier/croupier/internal/registry"
	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/store/storetest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	game = "demo"
	env  = "dev"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeTunnel says which agents have a tunnel open (the tunnel itself is a
// network component with its own tests).
type fakeTunnel struct {
	mu        sync.Mutex
	connected map[string]bool
}

func (f *fakeTunnel) Connected(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.connected[name]
}

func (f *fakeTunnel) set(name string, up bool) {
	f.mu.Lock()
	f.connected[name] = up
	f.mu.Unlock()
}

type departure struct {
	agent string
	gone  map[string]string
}

type harness struct {
	svc         *Service
	reg         *registry.Registry
	st          *store.Store
	tunnel      *fakeTunnel
	clock       *fakeClock
	assignments *Assignments

	mu       sync.Mutex
	departed []departure
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	st := storetest.SQLite(t)
	h := &harness{st: st, reg: registry.New(registry.Options{}), tunnel: &fakeTunnel{connected: map[string]bool{}},
		clock: &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}}
	scopes := NewScopes(st.Scopes())
	if err := scopes.Declare(context.Background(), game, env); err != nil {
		t.Fatal(err)
	}
	h.assignments = NewAssignments(st.Assignments(), time.Minute)
	h.assignments.now = h.clock.Now
	t.Cleanup(h.assignments.Close)
	h.svc = New(Config{
		HeartbeatInterval: 10 * time.Second,
		Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
		Departed: func(agent string, gone map[string]string) {
			h.mu.Lock()
			h.departed = append(h.departed, departure{agent, gone})
			h.mu.Unlock()
		},
	}, h.reg, h.assignments, scopes, h.tunnel)
	h.svc.now = h.clock.Now
	h.tunnel.set("a", true)
	return h
}

func (h *harness) departures() []departure {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]departure(nil), h.departed...)
}

func descriptor(id string) *croupierv1.FunctionDescriptor {
	return &croupierv1.FunctionDescriptor{Id: id}
}

// registration is agent a in demo/dev with two instances.
func registration() *croupierv1.RegisterAgentRequest {
	return &croupierv1.RegisterAgentRequest{
		AgentId: "a", GameId: game, Env: env, Version: "1.2.3", Labels: map[string]string{"region": "eu"},
		Descriptors: []*croupierv1.FunctionDescriptor{descriptor("player.get"), descriptor("player.ban")},
		Instances: []*croupierv1.InstanceInfo{
			{InstanceId: "gs-1", Functions: []string{"player.get", "player.ban"}, Incarnation: "inc-1"},
			{InstanceId: "gs-2", Functions: []string{"player.get"}, Incarnation: "inc-9"},
		},
	}
}

func agentCtx(name, g, e string) context.Context {
	return principal.NewContext(context.Background(), principal.Principal{Kind: principal.Agent, Name: name, Game: g, Env: e})
}

func (h *harness) register(t *testing.T, req *croupierv1.RegisterAgentRequest) *croupierv1.RegisterAgentResponse {
	t.Helper()
	resp, err := h.svc.RegisterAgent(context.Background(), req)
	if err != nil {
		t.Fatalf("RegisterAgent: %v", err)
	}
	return resp
}

func wantStatus(t *testing.T, err error, c codes.Code, info string) *croupierv1.ErrorInfo {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error; want %s %s", c, info)
	}
	if got := status.Code(err); got != c {
		t.Fatalf("status %s (%v); want %s", got, err, c)
	}
	ei := apierr.Info(err)
	if ei.GetCode() != info {
		t.Fatalf("ErrorInfo code %q (%v); want %q", ei.GetCode(), err, info)
	}
	return ei
}
