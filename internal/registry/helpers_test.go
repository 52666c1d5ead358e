package registry_test

import (
	"context"
	"sync"
	"testing"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/registry"
	"google.golang.org/protobuf/proto"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// inst builds an instance serving fns.
func inst(id string, fns ...string) registry.Instance {
	return registry.Instance{ID: id, Functions: fns}
}

// agent builds an agent in game/env with the given instances.
func agent(id, game, env string, instances ...registry.Instance) registry.Agent {
	return registry.Agent{ID: id, GameID: game, Env: env, Version: "1.0", Addr: id + ":1", Instances: instances}
}

// desc builds a descriptor whose Version tells versions apart.
func desc(id, version string) *croupierv1.FunctionDescriptor {
	return &croupierv1.FunctionDescriptor{Id: id, Name: id, Version: version}
}

func withDescs(a registry.Agent, ds ...*croupierv1.FunctionDescriptor) registry.Agent {
	a.Descriptors = ds
	return a
}

const waitFor = 5 * time.Second

// next returns the next event, failing the test if none arrives in time or
// the channel is closed.
func next(t *testing.T, ch <-chan *croupierv1.RegistrationEvent) *croupierv1.RegistrationEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed; want an event")
		}
		return ev
	case <-time.After(waitFor):
		t.Fatal("no event within", waitFor)
		return nil
	}
}

// expectEvent reads the next event and checks its type and function.
func expectEvent(t *testing.T, ch <-chan *croupierv1.RegistrationEvent, typ croupierv1.RegistrationEventType, fn string) *croupierv1.FunctionRegistration {
	t.Helper()
	ev := next(t, ch)
	if ev.GetType() != typ || ev.GetRegistration().GetFunctionId() != fn {
		t.Fatalf("event = %v %q, want %v %q", ev.GetType(), ev.GetRegistration().GetFunctionId(), typ, fn)
	}
	return ev.GetRegistration()
}

// expectClosed waits for ch to be closed, discarding events.
func expectClosed(t *testing.T, ch <-chan *croupierv1.RegistrationEvent) int {
	t.Helper()
	deadline := time.After(waitFor)
	n := 0
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return n
			}
			n++
		case <-deadline:
			t.Fatal("watch channel not closed within", waitFor)
		}
	}
}

// watch starts a watch and consumes its snapshot up to SYNCED, returning
// the ADDED registrations.
func watch(t *testing.T, r *registry.Registry, f registry.Filter) (<-chan *croupierv1.RegistrationEvent, []*croupierv1.FunctionRegistration, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := r.Watch(ctx, f)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	var snap []*croupierv1.FunctionRegistration
	for {
		ev := next(t, ch)
		switch ev.GetType() {
		case croupierv1.RegistrationEventType_SYNCED:
			if ev.GetRegistration() != nil {
				t.Fatal("SYNCED carries a registration")
			}
			return ch, snap, cancel
		case croupierv1.RegistrationEventType_ADDED:
			snap = append(snap, ev.GetRegistration())
		default:
			t.Fatalf("snapshot event %v before SYNCED", ev.GetType())
		}
	}
}

// marker makes a distinguishable change so the next event proves that no
// event was emitted for whatever happened before it.
func marker(t *testing.T, r *registry.Registry, game, env, name string) {
	t.Helper()
	if err := r.PutDescriptor(game, env, desc(name, "marker")); err != nil {
		t.Fatal(err)
	}
}

// strip returns a copy of reg without heartbeat times, for comparisons.
func strip(reg *croupierv1.FunctionRegistration) *croupierv1.FunctionRegistration {
	c := proto.Clone(reg).(*croupierv1.FunctionRegistration)
	for _, a := range c.GetAgents() {
		a.LastHeartbeat = 0
	}
	return c
}

func agentIDs(reg *croupierv1.FunctionRegistration) []string {
	var ids []string
	for _, a := range reg.GetAgents() {
		ids = append(ids, a.GetAgentId())
	}
	return ids
}
