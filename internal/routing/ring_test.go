package routing_test

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/croupier/croupier/internal/routing"
)

func members(n int) []string {
	ms := make([]string, n)
	for i := range ms {
		ms[i] = fmt.Sprintf("agent-%d/inst-%d", i%7, i)
	}
	return ms
}

func keys(n int) []string {
	ks := make([]string, n)
	for i := range ks {
		ks[i] = fmt.Sprintf("player-%d", i)
	}
	return ks
}

func assign(r *routing.Ring, ks []string) map[string]string {
	out := make(map[string]string, len(ks))
	for _, k := range ks {
		m, ok := r.Get(k)
		if !ok {
			panic("empty ring")
		}
		out[k] = m
	}
	return out
}

func TestRingEmpty(t *testing.T) {
	t.Parallel()
	for _, r := range []*routing.Ring{nil, routing.NewRing(nil, 0), routing.NewRing([]string{""}, 8)} {
		if m, ok := r.Get("k"); ok {
			t.Errorf("Get on empty ring = %q, true", m)
		}
		if r.Len() != 0 {
			t.Errorf("Len = %d, want 0", r.Len())
		}
	}
}

func TestRingIsStableAndOrderIndependent(t *testing.T) {
	t.Parallel()
	ms := members(10)
	rev := slices.Clone(ms)
	slices.Reverse(rev)
	a := routing.NewRing(ms, 128)
	b := routing.NewRing(append(rev, ms[3], ms[3]), 128) // duplicates ignored
	if b.Len() != 10 || !slices.Equal(a.Members(), b.Members()) {
		t.Fatalf("Members differ: %v vs %v", a.Members(), b.Members())
	}
	for _, k := range keys(2000) {
		m1, _ := a.Get(k)
		m2, _ := a.Get(k)
		m3, _ := b.Get(k)
		if m1 != m2 || m1 != m3 {
			t.Fatalf("key %q mapped to %q, %q, %q; want one member", k, m1, m2, m3)
		}
	}
}

// TestRingGolden pins the hash function and point layout: every server
// node, of any version, must send a key to the same instance.
func TestRingGolden(t *testing.T) {
	t.Parallel()
	r := routing.NewRing([]string{"a/1", "b/1", "c/1"}, 128)
	want := map[string]string{}
	for _, k := range []string{"player-1", "player-2", "player-3", "guild-9", ""} {
		m, _ := r.Get(k)
		want[k] = m
	}
	got := fmt.Sprint(want)
	const golden = "map[:a/1 guild-9:c/1 player-1:b/1 player-2:a/1 player-3:c/1]"
	if got != golden {
		t.Errorf("ring assignment changed:\n got %s\nwant %s\n(changing it reshuffles every hash-routed key in a mixed-version cluster)", got, golden)
	}
}

func TestRingMembershipChangeMovesOnlyItsShare(t *testing.T) {
	t.Parallel()
	const numKeys = 10000
	ks := keys(numKeys)
	for _, n := range []int{3, 10, 50} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			base := members(n)
			before := assign(routing.NewRing(base, 128), ks)

			// Join: keys move only to the newcomer, about 1/(n+1) of them.
			joiner := "new-agent/inst"
			afterJoin := assign(routing.NewRing(append(slices.Clone(base), joiner), 128), ks)
			moved := 0
			for _, k := range ks {
				if before[k] != afterJoin[k] {
					moved++
					if afterJoin[k] != joiner {
						t.Fatalf("join: key %q moved %q -> %q, not to the joiner", k, before[k], afterJoin[k])
					}
				}
			}
			if limit := 1.6 / float64(n+1) * numKeys; float64(moved) > limit || moved == 0 {
				t.Errorf("join: %d of %d keys moved, want 0 < moved <= %.0f", moved, numKeys, limit)
			}

			// Leave: only the leaver's keys move.
			leaver := base[n/2]
			afterLeave := assign(routing.NewRing(slices.DeleteFunc(slices.Clone(base), func(m string) bool { return m == leaver }), 128), ks)
			moved = 0
			for _, k := range ks {
				if before[k] != afterLeave[k] {
					moved++
					if before[k] != leaver {
						t.Fatalf("leave: key %q moved %q -> %q though its member stayed", k, before[k], afterLeave[k])
					}
				}
			}
			if limit := 1.6 / float64(n) * numKeys; float64(moved) > limit || moved == 0 {
				t.Errorf("leave: %d of %d keys moved, want 0 < moved <= %.0f", moved, numKeys, limit)
			}
		})
	}
}

func TestRingDistributionIsRoughlyEven(t *testing.T) {
	t.Parallel()
	const n, numKeys = 10, 100000
	counts := map[string]int{}
	for _, m := range assign(routing.NewRing(members(n), 128), keys(numKeys)) {
		counts[m]++
	}
	if len(counts) != n {
		t.Fatalf("%d members received keys, want %d", len(counts), n)
	}
	mean := float64(numKeys) / n
	worst := 0.0
	for _, c := range counts {
		worst = math.Max(worst, math.Abs(float64(c)-mean)/mean)
	}
	t.Logf("max deviation from even share: %.1f%%", worst*100)
	if worst > 0.25 {
		t.Errorf("a member deviates %.0f%% from the even share, want <= 25%%: %v", worst*100, counts)
	}
}

func BenchmarkRingGet(b *testing.B) {
	r := routing.NewRing(members(100), 128)
	ks := keys(1024)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		r.Get(ks[i%len(ks)])
	}
}

func BenchmarkNewRing(b *testing.B) {
	for _, n := range []int{10, 100} {
		ms := members(n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				routing.NewRing(ms, 128)
			}
		})
	}
}
