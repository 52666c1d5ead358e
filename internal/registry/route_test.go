package registry_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/registry"
	"google.golang.org/protobuf/proto"
)

func TestRouteSnapshots(t *testing.T) {
	t.Parallel()
	r := registry.New(registry.Options{})
	if _, ok := r.Route("g", "e", "f"); ok {
		t.Fatal("route of an unregistered function")
	}
	mustUpsert(t, r, withDescs(agent("b", "g", "e", inst("i2", "f"), inst("i1", "f", "h")), desc("f", "v1")))
	mustUpsert(t, r, agent("a", "g", "e", inst("x", "f")))
	rt, ok := r.Route("g", "e", "f")
	if !ok || rt.Descriptor.GetVersion() != "v1" || !rt.Enabled {
		t.Fatalf("route = %+v, %v", rt, ok)
	}
	if got := routeKeys(rt); !slices.Equal(got, []string{"a/x", "b/i1", "b/i2"}) {
		t.Fatalf("instances = %v, want sorted a/x b/i1 b/i2", got)
	}

	// Unchanged re-registration and heartbeats publish nothing new.
	mustUpsert(t, r, agent("a", "g", "e", inst("x", "f")))
	if err := r.Heartbeat("a", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if again, _ := r.Route("g", "e", "f"); again != rt {
		t.Fatal("an unchanged re-registration published a new route")
	}

	// A counter belongs to its instance: kept across re-registrations,
	// forgotten when the instance goes.
	x := rt.Instances[0]
	x.Begin()
	mustUpsert(t, r, agent("a", "g", "e", inst("x", "f"), inst("y", "f")))
	rt2, _ := r.Route("g", "e", "f")
	if rt2 == rt || rt2.Instances[0] != x || rt2.Instances[0].InFlight() != 1 {
		t.Fatalf("instance a/x lost its counter across a re-registration: %v", routeKeys(rt2))
	}
	if got := routeKeys(rt2); !slices.Equal(got, []string{"a/x", "a/y", "b/i1", "b/i2"}) {
		t.Fatalf("instances after adding a/y = %v", got)
	}
	if rt.Ring() == rt2.Ring() || rt2.Ring().Len() != 4 {
		t.Fatal("ring not rebuilt for the new membership")
	}
	mustUpsert(t, r, agent("a", "g", "e", inst("y", "f")))
	mustUpsert(t, r, agent("a", "g", "e", inst("x", "f"), inst("y", "f")))
	rt3, _ := r.Route("g", "e", "f")
	if rt3.Instances[0] == x || rt3.Instances[0].InFlight() != 0 {
		t.Fatal("a removed instance's counter came back with it")
	}
	x.End() // a call ending after its instance left touches only the old counter

	// Enablement and descriptor changes keep the instances and the ring.
	ring := rt3.Ring()
	r.SetEnabled("g", "e", "f", false)
	rt4, _ := r.Route("g", "e", "f")
	if rt4.Enabled || rt4.Ring() != ring || &rt4.Instances[0] != &rt3.Instances[0] {
		t.Fatal("SetEnabled rebuilt the membership")
	}
	r.Remove("a")
	r.Remove("b")
	if _, ok := r.Route("g", "e", "f"); ok {
		t.Fatal("route outlived its last instance")
	}
}

func routeKeys(rt *registry.Route) []string {
	var out []string
	for _, in := range rt.Instances {
		out = append(out, in.Key())
	}
	return out
}

// TestRoutesUnderConcurrentRegistrationsAndCalls runs registrations,
// removals and heartbeats against lock-free readers doing what the invoke
// path does, and checks every snapshot a reader sees is internally
// consistent and that the final routes match the final registrations.
func TestRoutesUnderConcurrentRegistrationsAndCalls(t *testing.T) {
	t.Parallel()
	r := registry.New(registry.Options{})
	const writers, readers, ops, agents = 3, 3, 1500, 40
	var stop atomic.Bool
	var wg, rwg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for range ops {
				id := fmt.Sprintf("agent-%02d", rng.IntN(agents))
				switch rng.IntN(5) {
				case 0:
					r.Remove(id)
				case 1:
					_ = r.Heartbeat(id, time.Time{})
				default:
					var ins []registry.Instance
					for i := range 1 + rng.IntN(3) {
						ins = append(ins, inst(fmt.Sprint("i", i), "f", fmt.Sprint("f", rng.IntN(3))))
					}
					if err := r.Upsert(withDescs(agent(id, "g", "e", ins...), desc("f", fmt.Sprint(rng.IntN(3))))); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	errs := make(chan error, readers)
	for range readers {
		rwg.Go(func() {
			for !stop.Load() {
				rt, ok := r.Route("g", "e", "f")
				if !ok {
					continue
				}
				if rt.Descriptor.GetId() != "f" {
					errs <- fmt.Errorf("route descriptor %v", rt.Descriptor)
					return
				}
				keys := routeKeys(rt)
				if !slices.IsSorted(keys) || len(slices.Compact(slices.Clone(keys))) != len(keys) {
					errs <- fmt.Errorf("instances not sorted and unique: %v", keys)
					return
				}
				if len(rt.Instances) > 0 {
					in := rt.Instances[rand.IntN(len(rt.Instances))]
					in.Begin()
					if m, ok := rt.Ring().Get("player"); !ok || !slices.Contains(keys, m) {
						errs <- fmt.Errorf("ring member %q not an instance", m)
						in.End()
						return
					}
					in.End()
				}
			}
		})
	}
	wg.Wait()
	stop.Store(true)
	rwg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, reg := range r.Registrations(registry.Filter{Game: "g"}) {
		rt, ok := r.Route("g", "e", reg.GetFunctionId())
		if !ok {
			t.Fatalf("no route for %s", reg.GetFunctionId())
		}
		var want []string
		for _, a := range reg.GetAgents() {
			for _, i := range a.GetInstances() {
				want = append(want, a.GetAgentId()+"/"+i)
			}
		}
		if got := routeKeys(rt); !slices.Equal(got, want) {
			t.Fatalf("%s: route %v, registration %v", reg.GetFunctionId(), got, want)
		}
		if !proto.Equal(rt.Descriptor, reg.GetDescriptor_()) {
			t.Fatalf("%s: route descriptor %v, registration %v", reg.GetFunctionId(), rt.Descriptor, reg.GetDescriptor_())
		}
		for _, in := range rt.Instances {
			if in.InFlight() != 0 {
				t.Fatalf("%s: %d in flight after all calls ended", in.Key(), in.InFlight())
			}
		}
	}
}

// deltaReplica rebuilds registrations from a delta watch.
type deltaReplica struct {
	state map[regKey]*croupierv1.FunctionRegistration
	bytes int
}

func (rp *deltaReplica) apply(ev *croupierv1.RegistrationEvent) error {
	rp.bytes += proto.Size(ev)
	if reg := ev.GetRegistration(); reg != nil { // snapshot
		rp.state[regKey{reg.GetGameId(), reg.GetEnv(), reg.GetFunctionId()}] = reg
		return nil
	}
	d := ev.GetDelta()
	if d == nil {
		return fmt.Errorf("live %v event without a delta", ev.GetType())
	}
	k := regKey{d.GetGameId(), d.GetEnv(), d.GetFunctionId()}
	cur, exists := rp.state[k]
	switch ev.GetType() {
	case croupierv1.RegistrationEventType_REMOVED:
		if !exists {
			return fmt.Errorf("REMOVED %v, which does not exist", k)
		}
		delete(rp.state, k)
		return nil
	case croupierv1.RegistrationEventType_ADDED:
		if exists || !d.GetReplace() {
			return fmt.Errorf("ADDED %v: exists %v, replace %v", k, exists, d.GetReplace())
		}
		cur = &croupierv1.FunctionRegistration{FunctionId: k.fn, GameId: k.game, Env: k.env}
	case croupierv1.RegistrationEventType_UPDATED:
		if !exists {
			return fmt.Errorf("UPDATED %v, which does not exist", k)
		}
		cur = proto.Clone(cur).(*croupierv1.FunctionRegistration)
	}
	cur.Enabled = d.GetEnabled()
	if d.GetDescriptor_() != nil {
		cur.Descriptor_ = d.GetDescriptor_()
	}
	if d.GetReplace() {
		cur.Agents = d.GetAgents()
	} else {
		byID := map[string]*croupierv1.AgentInfo{}
		for _, a := range cur.GetAgents() {
			byID[a.GetAgentId()] = a
		}
		for _, a := range d.GetAgents() {
			byID[a.GetAgentId()] = a
		}
		for _, id := range d.GetRemovedAgentIds() {
			delete(byID, id)
		}
		cur.Agents = nil
		for _, a := range byID {
			cur.Agents = append(cur.Agents, a)
		}
		slices.SortFunc(cur.Agents, func(a, b *croupierv1.AgentInfo) int {
			if a.GetAgentId() < b.GetAgentId() {
				return -1
			}
			return 1
		})
	}
	rp.state[k] = cur
	return nil
}

// TestDeltaWatch ramps a fleet up and partly down while one delta watcher
// reads along and another (with a tiny buffer) reads only at the end; both
// must rebuild the registry, the live one with bytes linear in the fleet.
func TestDeltaWatch(t *testing.T) {
	t.Parallel()
	r := registry.New(registry.Options{WatchBufferBytes: 2048})
	mustUpsert(t, r, agent("seed", "g", "e", inst("i", "f0")))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The live watcher's buffer holds the whole ramp, so it never collapses
	// to full state however the scheduler runs it: the bytes it counts are
	// the deltas' own (under load a 2 KiB buffer collapsed and the count
	// depended on timing).
	liveCh, err := r.WatchWith(ctx, registry.Filter{Game: "g"}, registry.WatchOptions{Deltas: true, BufferBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	slowCh, err := r.WatchWith(ctx, registry.Filter{Game: "g"}, registry.WatchOptions{Deltas: true})
	if err != nil {
		t.Fatal(err)
	}
	live := &deltaReplica{state: map[regKey]*croupierv1.FunctionRegistration{}}
	done := make(chan error, 1)
	go func() {
		for ev := range liveCh {
			if ev.GetType() == croupierv1.RegistrationEventType_SYNCED {
				continue
			}
			if err := live.apply(ev); err != nil {
				done <- err
				return
			}
			if ev.GetDelta().GetFunctionId() == "zz.done" {
				done <- nil
				return
			}
		}
	}()

	const n = 300
	for i := range n {
		a := withDescs(agent(fmt.Sprintf("a%03d", i), "g", "e", inst("i", "f0", "f1", "f2")), desc("f1", "1"))
		a.Labels = map[string]string{"n": fmt.Sprint(i % 3)}
		mustUpsert(t, r, a)
	}
	for i := range n / 3 {
		r.Remove(fmt.Sprintf("a%03d", 3*i))
	}
	r.SetEnabled("g", "e", "f2", false)
	marker(t, r, "g", "e", "zz.done")
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitFor):
		t.Fatal("live delta watcher did not finish")
	}
	checkDeltaReplica(t, r, live)
	// Whole registrations per event would be ~n²/2 agent entries per
	// function; deltas are ~1 per change.
	if perAgent := live.bytes / n; perAgent > 1500 {
		t.Errorf("delta watch sent %d bytes for %d agents (%d per agent); want O(1) per change", live.bytes, n, perAgent)
	}

	slow := &deltaReplica{state: map[regKey]*croupierv1.FunctionRegistration{}}
	events := 0
	for ev := range slowCh {
		events++
		if ev.GetType() == croupierv1.RegistrationEventType_SYNCED {
			continue
		}
		if err := slow.apply(ev); err != nil {
			t.Fatal(err)
		}
		if ev.GetDelta().GetFunctionId() == "zz.done" {
			break
		}
	}
	checkDeltaReplica(t, r, slow)
	if events > 12 {
		t.Errorf("slow watcher got %d events; want its pending changes collapsed per function", events)
	}
}

func checkDeltaReplica(t *testing.T, r *registry.Registry, rp *deltaReplica) {
	t.Helper()
	regs := r.Registrations(registry.Filter{Game: "g"})
	if len(regs) != len(rp.state) {
		t.Fatalf("replica has %d registrations, registry %d", len(rp.state), len(regs))
	}
	for _, w := range regs {
		got := rp.state[regKey{w.GetGameId(), w.GetEnv(), w.GetFunctionId()}]
		if got == nil || !proto.Equal(strip(got), strip(w)) {
			t.Fatalf("%s:\n got  %v\n want %v", w.GetFunctionId(), got, w)
		}
	}
}

func TestUpdateInstances(t *testing.T) {
	t.Parallel()
	r := registry.New(registry.Options{})
	if err := r.UpdateInstances("nobody", nil, nil, nil); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("UpdateInstances(unknown) = %v, want ErrNotFound", err)
	}
	mustUpsert(t, r, withDescs(agent("a", "g", "e", inst("i1", "f"), inst("i2", "f")), desc("f", "v1")))
	ch, _, _ := watch(t, r, registry.Filter{Game: "g"})
	rt, _ := r.Route("g", "e", "f")
	i1 := rt.Instances[0]

	// Add i3 serving f and h, drop i2: one event each for f and h.
	if err := r.UpdateInstances("a", []registry.Instance{inst("i3", "f", "h")}, []string{"i2"}, []*croupierv1.FunctionDescriptor{desc("h", "v1")}); err != nil {
		t.Fatal(err)
	}
	if got := expectEvent(t, ch, updated, "f").GetAgents()[0].GetInstances(); !slices.Equal(got, []string{"i1", "i3"}) {
		t.Fatalf("f instances = %v, want i1 i3", got)
	}
	if reg := expectEvent(t, ch, added, "h"); reg.GetDescriptor_().GetVersion() != "v1" {
		t.Fatalf("h = %v", reg)
	}
	rt2, _ := r.Route("g", "e", "f")
	if rt2.Instances[0] != i1 || rt2.Descriptor.GetVersion() != "v1" {
		t.Fatal("untouched instance lost its counter, or the descriptor changed")
	}
	a, _ := r.Agent("a")
	if len(a.Instances) != 2 || a.Instances[1].ID != "i3" || a.Version != "1.0" || len(a.Descriptors) != 2 {
		t.Fatalf("agent after update = %+v", a)
	}
	// An unchanged instance re-sent: nothing to publish.
	if err := r.UpdateInstances("a", []registry.Instance{inst("i3", "f", "h")}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if again, _ := r.Route("g", "e", "f"); again != rt2 {
		t.Fatal("an unchanged update published a new route")
	}
	if err := r.UpdateInstances("a", []registry.Instance{inst("i1", "f"), inst("i1", "h")}, nil, nil); !errors.Is(err, registry.ErrInvalid) {
		t.Fatalf("duplicate instance ids = %v, want ErrInvalid", err)
	}
}
