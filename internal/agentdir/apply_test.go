package agentdir

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/croupier/croupier/internal/cluster"
	"github.com/croupier/croupier/internal/registry"
)

// applyNode is a one-node bus for the Dirs under test, which are not
// started: the tests drive apply directly with crafted updates, as the
// two subscriptions would.
func applyNode(t *testing.T) *cluster.Node {
	t.Helper()
	node, err := cluster.Start(context.Background(), cluster.Config{NodeID: "recv"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(node.Close)
	return node
}

func applyDir(node *cluster.Node) (*Dir, *registry.Registry) {
	var d *Dir
	reg := registry.New(registry.Options{Changed: func(id string) { d.Changed(id) }})
	d = New(Config{}, node, reg, nil, noTunnel{})
	return d, reg
}

func (d *Dir) applyU(t *testing.T, u agentUpdate) {
	t.Helper()
	b, err := json.Marshal(u)
	if err != nil {
		t.Fatal(err)
	}
	d.apply(b)
}

func full(seq uint64, agent string, instances ...string) agentUpdate {
	a := registry.Agent{ID: agent, GameID: "g", Env: "prod"}
	for _, id := range instances {
		a.Instances = append(a.Instances, registry.Instance{ID: id, Functions: []string{"f"}})
	}
	return agentUpdate{Node: "h1", Seq: seq, Agent: a}
}

func delta(seq, base uint64, agent string, upsert string, remove ...string) agentUpdate {
	return agentUpdate{Node: "h1", Seq: seq, Delta: true, Base: base, Agent: registry.Agent{ID: agent},
		Upsert: []registry.Instance{{ID: upsert, Functions: []string{"f"}}}, Remove: remove}
}

func removal(seq uint64, agent string) agentUpdate {
	return agentUpdate{Node: "h1", Seq: seq, Agent: registry.Agent{ID: agent}, Removed: true}
}

// instancesOf returns the agent's instance ids, or "absent".
func instancesOf(reg *registry.Registry, agent string) string {
	a, ok := reg.Agent(agent)
	if !ok {
		return "absent"
	}
	var ids []string
	for _, in := range a.Instances {
		ids = append(ids, in.ID)
	}
	slices.Sort(ids)
	return fmt.Sprint(ids)
}

// A sync's copy and live updates come through two subscriptions in
// either order; whatever the order, the newest state wins, and a delta
// whose base was not applied here asks the holder for a resync.
func TestApplyOrders(t *testing.T) {
	node := applyNode(t)
	for _, tc := range []struct {
		name      string
		updates   []agentUpdate
		want      string
		wantHold  string
		wantAsk   bool
		wantLastN int // entries in last
	}{
		{"sync copy then delta", []agentUpdate{full(4, "a", "i1"), delta(5, 4, "a", "i2", "i1")}, "[i2]", "h1", false, 1},
		{"delta before its base: dropped, resync", []agentUpdate{delta(5, 4, "a", "i2", "i1"), full(4, "a", "i1")}, "[i1]", "h1", true, 1},
		{"newer whole registration, then the older sync copy", []agentUpdate{full(6, "a", "i3"), full(4, "a", "i1")}, "[i3]", "h1", false, 1},
		{"sync copy then removal", []agentUpdate{full(4, "a", "i1"), removal(6, "a")}, "absent", "", false, 1},
		{"removal then the older sync copy", []agentUpdate{removal(6, "a"), full(4, "a", "i1")}, "absent", "", false, 1},
		{"delta after a removal", []agentUpdate{full(4, "a", "i1"), removal(6, "a"), delta(7, 6, "a", "i2")}, "absent", "", true, 1},
		// A failed whole registration is not recorded as applied: the
		// same update sent again (the resync's copy) is applied.
		{"failed registration, then its copy", []agentUpdate{full(5, "a", "i1", "i1"), full(5, "a", "i1")}, "[i1]", "h1", false, 1},
		{"failed registration, then a delta on it", []agentUpdate{full(5, "a", "i1", "i1"), delta(6, 5, "a", "i2")}, "absent", "", true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, reg := applyDir(node)
			for _, u := range tc.updates {
				d.applyU(t, u)
			}
			if got := instancesOf(reg, "a"); got != tc.want {
				t.Errorf("instances %s, want %s", got, tc.want)
			}
			if h := d.Holder("a"); h != tc.wantHold {
				t.Errorf("holder %q, want %q", h, tc.wantHold)
			}
			d.mu.Lock()
			defer d.mu.Unlock()
			if d.resync["h1"] != tc.wantAsk {
				t.Errorf("resync of h1 %v, want %v", d.resync["h1"], tc.wantAsk)
			}
			if len(d.last) != tc.wantLastN {
				t.Errorf("last has %d entries, want %d", len(d.last), tc.wantLastN)
			}
		})
	}
}

// A sync copy and a removal applied at once from the two subscriptions'
// goroutines: the removal is newer, so the agent must end absent (when
// the registry write happened outside the lock, the copy could be written
// after the removal and leave a ghost agent). Many agents, each a pair of
// goroutines, so both interleavings occur; with apply serialised every
// interleaving ends the same way.
func TestApplyConcurrentCopyAndRemoval(t *testing.T) {
	d, reg := applyDir(applyNode(t))
	const agents = 200
	var wg sync.WaitGroup
	for i := range agents {
		id := fmt.Sprintf("a%d", i)
		for _, u := range []agentUpdate{full(4, id, "i1"), removal(5, id)} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d.applyU(t, u)
			}()
		}
	}
	wg.Wait()
	for i := range agents {
		id := fmt.Sprintf("a%d", i)
		if got := instancesOf(reg, id); got != "absent" || d.Holder(id) != "" {
			t.Fatalf("%s after a copy and a newer removal: instances %s, holder %q; want absent", id, got, d.Holder(id))
		}
	}
}

// Removals are remembered a few sweeps, then forgotten: last does not
// grow with every agent that ever left.
func TestTombstonesExpire(t *testing.T) {
	d, _ := applyDir(applyNode(t))
	d.applyU(t, full(4, "a", "i1"))
	d.applyU(t, removal(5, "a"))
	d.applyU(t, full(6, "b", "i1"))
	alive := map[string]bool{"h1": true}
	for range tombstoneSweeps {
		d.forget(alive)
		d.mu.Lock()
		_, ok := d.last["a"]
		d.mu.Unlock()
		if !ok {
			t.Fatal("tombstone dropped before tombstoneSweeps sweeps")
		}
	}
	d.forget(alive)
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.last["a"]; ok {
		t.Fatalf("tombstone kept after %d sweeps", tombstoneSweeps+1)
	}
	if _, ok := d.last["b"]; !ok {
		t.Fatal("a live agent's last update was forgotten")
	}
}

// An agent's holder changes from h1 to h2: the calls forwarded to h1 end
// (it moved away), those forwarded to h2 — even one that chose h2 while the
// update was being written to the registry — do not.
func TestHolderChangeEndsOnlyTheOldHoldersCalls(t *testing.T) {
	node := applyNode(t)
	var d *Dir
	var during context.Context // a call that chose h2 during the write
	reg := registry.New(registry.Options{Changed: func(id string) {
		if d.Holder(id) == "h2" && during == nil {
			during = d.awayCtx(id, "h2")
		}
		d.Changed(id)
	}})
	d = New(Config{}, node, reg, nil, noTunnel{})
	d.applyU(t, full(1, "a1", "i1"))
	toH1 := d.awayCtx("a1", "h1")
	if toH1.Err() != nil {
		t.Fatal("a call to the agent's holder ended before anything changed")
	}
	moved := full(1, "a1", "i1")
	moved.Node = "h2"
	d.applyU(t, moved)
	if toH1.Err() == nil {
		t.Fatal("a call forwarded to h1 goes on after the agent moved to h2")
	}
	if during == nil || during.Err() != nil {
		t.Fatalf("a call to the new holder h2, started while the move was written, ended (%v)", during)
	}
	if after := d.awayCtx("a1", "h2"); after.Err() != nil || after != during {
		t.Fatal("calls to h2 after the move do not share the live context")
	}
	if stale := d.awayCtx("a1", "h1"); stale.Err() == nil {
		t.Fatal("a call that chose h1 before the move but starts after it would wait on h1")
	}
}
