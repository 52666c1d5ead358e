package routing_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/croupier/croupier/internal/routing"
)

func TestRingCacheReusesRingPerMembership(t *testing.T) {
	t.Parallel()
	c := routing.NewRingCache(2, 16)
	a := c.Ring([]string{"b/1", "a/1"})
	if b := c.Ring([]string{"a/1", "b/1", "a/1"}); a != b {
		t.Error("same membership in another order built a second ring")
	}
	if x := c.Ring([]string{"a/1b/1"}); x == a {
		t.Error("membership {a/1b/1} shares the ring of {a/1, b/1}")
	}
	c.Ring([]string{"c/1"}) // evicts {a/1, b/1}, the least recently used
	if c.Len() != 2 {
		t.Errorf("Len = %d, want capacity 2", c.Len())
	}
	if again := c.Ring([]string{"a/1", "b/1"}); again == a {
		t.Error("evicted ring was returned")
	} else if m, _ := again.Get("k"); m != mustGet(t, a, "k") {
		t.Error("rebuilt ring routes differently")
	}
}

func mustGet(t *testing.T, r *routing.Ring, k string) string {
	t.Helper()
	m, ok := r.Get(k)
	if !ok {
		t.Fatal("empty ring")
	}
	return m
}

func TestRingCacheConcurrent(t *testing.T) {
	t.Parallel()
	c := routing.NewRingCache(4, 8)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				set := []string{fmt.Sprint("m", (g+i)%6), "fixed"}
				r := c.Ring(set)
				if r.Len() != 2 {
					t.Errorf("ring for %v has %d members", set, r.Len())
					return
				}
			}
		})
	}
	wg.Wait()
	if c.Len() > 4 {
		t.Errorf("Len = %d exceeds capacity", c.Len())
	}
}

func BenchmarkRingCacheHit(b *testing.B) {
	c := routing.NewRingCache(0, 0)
	ms := members(10)
	c.Ring(ms)
	for b.Loop() {
		c.Ring(ms)
	}
}
