package registry_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/registry"
)

const (
	added   = croupierv1.RegistrationEventType_ADDED
	updated = croupierv1.RegistrationEventType_UPDATED
	removed = croupierv1.RegistrationEventType_REMOVED
)

func TestWatchSnapshotThenSynced(t *testing.T) {
	t.Parallel()
	r := registry.New(registry.Options{})
	mustUpsert(t, r, agent("a", "g", "e", inst("i", "b.fn", "a.fn", "c.fn")))
	mustUpsert(t, r, agent("other", "g", "e2", inst("i", "a.fn")))

	_, snap, _ := watch(t, r, registry.Filter{Game: "g", Env: "e"})
	if len(snap) != 3 || snap[0].GetFunctionId() != "a.fn" || snap[1].GetFunctionId() != "b.fn" || snap[2].GetFunctionId() != "c.fn" {
		t.Fatalf("snapshot = %v, want a.fn, b.fn, c.fn in order", snap)
	}
	_, snap, _ = watch(t, r, registry.Filter{Function: "a.fn"})
	if len(snap) != 2 || snap[0].GetEnv() != "e" || snap[1].GetEnv() != "e2" {
		t.Fatalf("function-filtered snapshot = %v", snap)
	}
	_, snap, _ = watch(t, r, registry.Filter{Game: "nope"})
	if len(snap) != 0 {
		t.Fatalf("snapshot of an empty scope = %v", snap)
	}
}

func TestEventLifecycle(t *testing.T) {
	t.Parallel()
	clk := newClock()
	r := registry.New(registry.Options{Now: clk.Now})
	ch, _, _ := watch(t, r, registry.Filter{Game: "g", Env: "e"})

	// First instance: ADDED.
	mustUpsert(t, r, withDescs(agent("a1", "g", "e", inst("i1", "f")), desc("f", "v1")))
	reg := expectEvent(t, ch, added, "f")
	if reg.GetDescriptor_().GetVersion() != "v1" || len(reg.GetAgents()) != 1 || !reg.GetEnabled() {
		t.Fatalf("ADDED registration = %v", reg)
	}

	// Identical re-registration and heartbeats: no event.
	mustUpsert(t, r, withDescs(agent("a1", "g", "e", inst("i1", "f")), desc("f", "v1")))
	clk.Advance(time.Minute)
	if err := r.Heartbeat("a1", time.Time{}); err != nil {
		t.Fatal(err)
	}
	marker(t, r, "g", "e", "m1")
	expectEvent(t, ch, added, "m1")

	// More instances, another agent, a new descriptor, new labels: UPDATED.
	mustUpsert(t, r, withDescs(agent("a1", "g", "e", inst("i1", "f"), inst("i2", "f")), desc("f", "v1")))
	if got := expectEvent(t, ch, updated, "f").GetAgents()[0].GetInstances(); len(got) != 2 {
		t.Fatalf("UPDATED instances = %v, want 2", got)
	}
	mustUpsert(t, r, agent("a2", "g", "e", inst("i1", "f")))
	if got := agentIDs(expectEvent(t, ch, updated, "f")); len(got) != 2 {
		t.Fatalf("UPDATED agents = %v", got)
	}
	mustUpsert(t, r, withDescs(agent("a1", "g", "e", inst("i1", "f"), inst("i2", "f")), desc("f", "v2")))
	if v := expectEvent(t, ch, updated, "f").GetDescriptor_().GetVersion(); v != "v2" {
		t.Fatalf("UPDATED descriptor version = %q, want v2", v)
	}
	relabel := agent("a2", "g", "e", inst("i1", "f"))
	relabel.Labels = map[string]string{"zone": "eu"}
	mustUpsert(t, r, relabel)
	expectEvent(t, ch, updated, "f")
	r.SetEnabled("g", "e", "f", false)
	if expectEvent(t, ch, updated, "f").GetEnabled() {
		t.Fatal("SetEnabled(false) published enabled=true")
	}
	r.SetEnabled("g", "e", "f", false) // no change, no event
	marker(t, r, "g", "e", "m2")
	expectEvent(t, ch, added, "m2")
	r.SetEnabled("g", "e", "f", true)
	expectEvent(t, ch, updated, "f")

	// One agent stops serving f and starts serving h: f UPDATED, h ADDED,
	// in function order within the one mutation.
	mustUpsert(t, r, agent("a2", "g", "e", inst("i1", "h")))
	expectEvent(t, ch, updated, "f")
	expectEvent(t, ch, added, "h")

	// Last instance gone: REMOVED, carrying the last state.
	r.Remove("a2")
	if got := agentIDs(expectEvent(t, ch, removed, "h")); len(got) != 1 || got[0] != "a2" {
		t.Fatalf("REMOVED agents = %v, want the last state [a2]", got)
	}

	// A direct descriptor keeps f alive without instances: UPDATED, no agents.
	if err := r.PutDescriptor("g", "e", desc("f", "direct")); err != nil {
		t.Fatal(err)
	}
	if v := expectEvent(t, ch, updated, "f").GetDescriptor_().GetVersion(); v != "direct" {
		t.Fatalf("descriptor after PutDescriptor = %q", v)
	}
	r.Remove("a1")
	if reg := expectEvent(t, ch, updated, "f"); len(reg.GetAgents()) != 0 || reg.GetDescriptor_().GetVersion() != "direct" {
		t.Fatalf("after the last agent left = %v, want no agents and the direct descriptor", reg)
	}
	r.DeleteDescriptor("g", "e", "f")
	expectEvent(t, ch, removed, "f")

	// Enablement set before a function appears applies when it does.
	r.SetEnabled("g", "e", "later", false)
	mustUpsert(t, r, agent("a3", "g", "e", inst("i", "later")))
	if expectEvent(t, ch, added, "later").GetEnabled() {
		t.Fatal("function disabled in advance was published enabled")
	}
}

func TestAgentChangingScopeMovesItsRegistrations(t *testing.T) {
	t.Parallel()
	r := registry.New(registry.Options{})
	mustUpsert(t, r, agent("a", "g", "old", inst("i", "f")))
	oldCh, _, _ := watch(t, r, registry.Filter{Game: "g", Env: "old"})
	newCh, _, _ := watch(t, r, registry.Filter{Game: "g", Env: "new"})
	mustUpsert(t, r, agent("a", "g", "new", inst("i", "f")))
	expectEvent(t, oldCh, removed, "f")
	if reg := expectEvent(t, newCh, added, "f"); reg.GetEnv() != "new" {
		t.Fatalf("ADDED in %q", reg.GetEnv())
	}
	if got := r.Agents("g", "old"); len(got) != 0 {
		t.Fatalf("agent still listed in its old scope: %v", got)
	}
	if got := r.Instances("g", "old", "f"); len(got) != 0 {
		t.Fatalf("instances still served in the old scope: %v", got)
	}
}

func TestWatchClosesWhenContextEnds(t *testing.T) {
	t.Parallel()
	r := registry.New(registry.Options{})
	ch, _, cancel := watch(t, r, registry.Filter{})
	if r.Watchers() != 1 {
		t.Fatalf("Watchers = %d, want 1", r.Watchers())
	}
	cancel()
	expectClosed(t, ch)
	if r.Watchers() != 0 {
		t.Fatalf("Watchers = %d after cancel, want 0", r.Watchers())
	}
	// Mutations after the close must not panic on the closed channel.
	mustUpsert(t, r, agent("a", "g", "e", inst("i", "f")))

	done, stop := context.WithCancel(context.Background())
	stop()
	if _, err := r.Watch(done, registry.Filter{}); err == nil {
		t.Fatal("Watch with a done context succeeded")
	}
}

func TestSlowWatcherCoalescesWithoutBlocking(t *testing.T) {
	t.Parallel()
	r := registry.New(registry.Options{WatchBufferBytes: 1024})
	var seed []string
	for i := range 10 { // a snapshot larger than the buffer
		seed = append(seed, fnName(i))
	}
	mustUpsert(t, r, agent("seed", "g", "e", inst("i", seed...)))
	slowCtx, cancelSlow := context.WithCancel(context.Background())
	defer cancelSlow()
	slow, err := r.Watch(slowCtx, registry.Filter{Game: "g"})
	if err != nil {
		t.Fatal(err)
	}
	fast, _, _ := watch(t, r, registry.Filter{Game: "g"})

	// Many more mutations than the buffer holds; the fast watcher keeps
	// up, the slow one never reads. Upsert must not block: the test's
	// deadline catches a registry waiting on the slow reader.
	const mutations = 50
	done := make(chan error, 1)
	go func() {
		done <- func() error {
			for i := range mutations {
				if err := r.Upsert(agent("w", "g", "e", inst("i", "live."+fnName(i)))); err != nil {
					return err
				}
				want := []string{"ADDED live." + fnName(i)}
				if i > 0 {
					want = []string{"REMOVED live." + fnName(i-1), want[0]}
				}
				for _, w := range want {
					select {
					case ev, ok := <-fast:
						if got := ev.GetType().String() + " " + ev.GetRegistration().GetFunctionId(); !ok || got != w {
							return fmt.Errorf("fast watcher got %q (open %v), want %q", got, ok, w)
						}
					case <-time.After(waitFor):
						return fmt.Errorf("fast watcher: no %q", w)
					}
				}
			}
			return nil
		}()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * waitFor):
		t.Fatal("mutations blocked on a slow watcher")
	}
	marker(t, r, "g", "e", "zz.done")

	// The slow watcher was not cut off: it reads the snapshot, SYNCED and
	// then far fewer live events than mutations (functions that came and
	// went unseen produce none), ending in the registry's state.
	rp := &replica{filter: registry.Filter{Game: "g"}, state: map[regKey]*croupierv1.FunctionRegistration{}}
	live, synced := 0, false
	for {
		ev := next(t, slow)
		if ev.GetType() == croupierv1.RegistrationEventType_SYNCED {
			synced = true
			continue
		}
		if err := rp.apply(ev); err != nil {
			t.Fatal(err)
		}
		if synced {
			live++
		}
		if ev.GetRegistration().GetFunctionId() == "zz.done" {
			break
		}
	}
	if live > 6 {
		t.Errorf("slow watcher got %d live events for %d mutations; want them coalesced", live, 2*mutations)
	}
	checkReplica(t, r, rp)
	if slowCtx.Err() != nil || r.Watchers() != 2 {
		t.Fatalf("Watchers = %d, want both still watching", r.Watchers())
	}
}

func fnName(i int) string {
	return "fn" + string(rune('0'+i/10)) + string(rune('0'+i%10))
}
