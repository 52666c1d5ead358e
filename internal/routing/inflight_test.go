package routing_test

import (
	"sync"
	"testing"

	"github.com/croupier/croupier/internal/routing"
)

func TestInFlightCounts(t *testing.T) {
	t.Parallel()
	f := routing.NewInFlight()
	if got := f.Get("a/1"); got != 0 {
		t.Fatalf("Get(unknown) = %d", got)
	}
	f.Inc("a/1")
	f.Inc("a/1")
	f.Inc("b/1")
	if f.Get("a/1") != 2 || f.Get("b/1") != 1 {
		t.Fatalf("counts = %d, %d; want 2, 1", f.Get("a/1"), f.Get("b/1"))
	}
	if n := f.Dec("a/1"); n != 1 {
		t.Fatalf("Dec = %d, want 1", n)
	}
	f.Dec("b/1")
	if n := f.Dec("b/1"); n != 0 || f.Get("b/1") != 0 {
		t.Fatalf("extra Dec drove the count to %d", f.Get("b/1"))
	}
	if n := f.Dec("never"); n != 0 {
		t.Fatalf("Dec(unknown) = %d", n)
	}
}

func TestInFlightAcquireReleasesOnce(t *testing.T) {
	t.Parallel()
	f := routing.NewInFlight()
	keep := f.Acquire("a/1")
	release := f.Acquire("a/1")
	release()
	release()
	if got := f.Get("a/1"); got != 1 {
		t.Fatalf("after double release Get = %d, want 1", got)
	}
	keep()
}

func TestInFlightForgetKeepsBusyKeys(t *testing.T) {
	t.Parallel()
	f := routing.NewInFlight()
	f.Inc("busy")
	f.Inc("idle")
	f.Dec("idle")
	f.Forget("busy", "idle", "unknown")
	if f.Len() != 1 || f.Get("busy") != 1 {
		t.Fatalf("Len = %d, busy = %d; want the busy counter kept", f.Len(), f.Get("busy"))
	}
	f.Dec("busy")
	f.Forget("busy")
	if f.Len() != 0 {
		t.Fatalf("Len = %d after draining and forgetting, want 0", f.Len())
	}
}

func TestInFlightConcurrent(t *testing.T) {
	t.Parallel()
	f := routing.NewInFlight()
	keys := []string{"a/1", "a/2", "b/1"}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				k := keys[(g+i)%len(keys)]
				release := f.Acquire(k)
				if f.Get(k) < 1 {
					t.Errorf("Get(%s) < 1 while holding a call", k)
				}
				release()
				if i%50 == 0 {
					f.Forget(keys...)
				}
			}
		})
	}
	wg.Wait()
	for _, k := range keys {
		if n := f.Get(k); n != 0 {
			t.Errorf("%s: %d in flight after all calls ended", k, n)
		}
	}
}
