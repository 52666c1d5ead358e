package invoke

import (
	"fmt"
	"testing"

	"github.com/croupier/croupier/internal/registry"
)

// TestLeastLoadedTwoChoices: above the scan limit lb compares two random
// instances, so with half the fleet busy a pick lands on a busy instance
// only when both choices are busy (~24 %, vs 50 % for a random pick), and an
// instance busier than every other is never picked over an idle one.
func TestLeastLoadedTwoChoices(t *testing.T) {
	t.Parallel()
	r := registry.New(registry.Options{})
	const n = 40
	var ins []registry.Instance
	for i := range n {
		ins = append(ins, registry.Instance{ID: fmt.Sprintf("i%02d", i), Functions: []string{"f"}})
	}
	if err := r.Upsert(registry.Agent{ID: "a", GameID: "g", Env: "e", Instances: ins}); err != nil {
		t.Fatal(err)
	}
	rt, _ := r.Route("g", "e", "f")
	busy := map[string]bool{}
	for i, in := range rt.Instances {
		if i%2 == 0 {
			in.Begin()
			busy[in.Key()] = true
		}
	}
	const picks = 4000
	toBusy, seen := 0, map[string]bool{}
	for range picks {
		in := leastLoaded(rt.Instances, nil)
		seen[in.Key()] = true
		if busy[in.Key()] {
			toBusy++
		}
	}
	// Expected 24.4 % (σ ≈ 0.7 % over 4,000 picks); 30 % is 8σ away.
	if share := float64(toBusy) / picks; share > 0.30 {
		t.Fatalf("%.1f %% of picks went to busy instances; want ~24 %%", 100*share)
	}
	if len(seen) < n/2 {
		t.Fatalf("picks reached %d instances; want the idle half at least", len(seen))
	}
}

// TestLeastLoadedPrefersThisNode: with several server nodes lb counts an
// instance on another node (its call would be forwarded) as one call
// busier: idle local instances always win, and a local instance two calls
// busier than a remote one loses to it, so load still spreads.
func TestLeastLoadedPrefersThisNode(t *testing.T) {
	t.Parallel()
	r := registry.New(registry.Options{})
	for _, a := range []string{"here", "there"} {
		if err := r.Upsert(registry.Agent{ID: a, GameID: "g", Env: "e",
			Instances: []registry.Instance{{ID: "1", Functions: []string{"f"}}}}); err != nil {
			t.Fatal(err)
		}
	}
	rt, _ := r.Route("g", "e", "f")
	remote := func(agent string) bool { return agent == "there" }
	var local *registry.RouteInstance
	for _, in := range rt.Instances {
		if in.Agent == "here" {
			local = in
		}
	}
	for range 200 {
		if in := leastLoaded(rt.Instances, remote); in != local {
			t.Fatalf("idle: picked %s, want the local instance", in.Key())
		}
	}
	local.Begin()
	seen := map[string]bool{}
	for range 200 {
		seen[leastLoaded(rt.Instances, remote).Agent] = true
	}
	if !seen["here"] || !seen["there"] {
		t.Fatalf("one call on the local instance (a tie): picked %v, want both", seen)
	}
	local.Begin()
	for range 200 {
		if in := leastLoaded(rt.Instances, remote); in == local {
			t.Fatal("two calls on the local instance: picked it over the idle remote one")
		}
	}
	// Without Remote (one node) the idle instance wins as before.
	if in := leastLoaded(rt.Instances, nil); in == local {
		t.Fatal("no remote function: picked the busy instance")
	}
}
