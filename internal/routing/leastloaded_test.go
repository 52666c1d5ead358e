package routing_test

import (
	"testing"

	"github.com/croupier/croupier/internal/routing"
)

func TestLeastLoadedEmpty(t *testing.T) {
	t.Parallel()
	if c, ok := routing.LeastLoaded(nil); ok {
		t.Fatalf("LeastLoaded(nil) = %v, true; want false", c)
	}
}

func TestLeastLoadedPicksMinimum(t *testing.T) {
	t.Parallel()
	cands := []routing.Candidate{
		{Key: "a/1", InFlight: 5}, {Key: "a/2", InFlight: 2}, {Key: "b/1", InFlight: 9}, {Key: "b/2", InFlight: 3},
	}
	for range 100 {
		c, ok := routing.LeastLoaded(cands)
		if !ok || c.Key != "a/2" {
			t.Fatalf("LeastLoaded = %v, %v; want a/2", c, ok)
		}
	}
}

func TestLeastLoadedSpreadsTies(t *testing.T) {
	t.Parallel()
	cands := []routing.Candidate{
		{Key: "a/1", InFlight: 1}, {Key: "busy", InFlight: 7}, {Key: "a/2", InFlight: 1},
		{Key: "b/1", InFlight: 1}, {Key: "b/2", InFlight: 1},
	}
	const picks = 4000
	counts := map[string]int{}
	for range picks {
		c, _ := routing.LeastLoaded(cands)
		counts[c.Key]++
	}
	if counts["busy"] != 0 {
		t.Errorf("busy instance picked %d times", counts["busy"])
	}
	// Each of the 4 tied instances expects 1000 picks (σ ≈ 27); ±300 is
	// >10σ, so this fails only if ties are not spread uniformly.
	for _, k := range []string{"a/1", "a/2", "b/1", "b/2"} {
		if n := counts[k]; n < 700 || n > 1300 {
			t.Errorf("%s picked %d of %d times, want ~1000: %v", k, n, picks, counts)
		}
	}
}
