package ratelimit_test

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/ratelimit"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func newLimiter(t *testing.T, cfg ratelimit.Config) (*ratelimit.Limiter, *clock) {
	t.Helper()
	c := &clock{}
	c.ns.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	cfg.Now = c.Now
	l, err := ratelimit.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l, c
}

func TestPerUserBurstAndRefill(t *testing.T) {
	t.Parallel()
	l, c := newLimiter(t, ratelimit.Config{PerUser: ratelimit.Rate{PerSecond: 2, Burst: 3}})
	for i := range 3 {
		if err := l.Allow("bob", "g", "e", "f"); err != nil {
			t.Fatalf("call %d within burst refused: %v", i, err)
		}
	}
	err := l.Allow("bob", "g", "e", "f")
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "rate limit of user bob exceeded") {
		t.Fatalf("over burst: %v", err)
	}
	d, ok := ratelimit.RetryAfter(err)
	if !ok || d != 500*time.Millisecond {
		t.Fatalf("retry after = %v, %v; want 500ms", d, ok)
	}
	if h, _ := ratelimit.RetryAfterHeader(err); h != "1" {
		t.Fatalf("Retry-After header = %q, want 1", h)
	}
	// Another user has their own bucket.
	if err := l.Allow("amy", "g", "e", "f"); err != nil {
		t.Fatalf("amy refused: %v", err)
	}
	c.Advance(499 * time.Millisecond)
	if l.Allow("bob", "g", "e", "f") == nil {
		t.Fatal("allowed before a token refilled")
	}
	c.Advance(time.Millisecond)
	if err := l.Allow("bob", "g", "e", "f"); err != nil {
		t.Fatalf("refused after refill: %v", err)
	}
	// Refill is capped at the burst.
	c.Advance(time.Hour)
	for i := range 3 {
		if err := l.Allow("bob", "g", "e", "f"); err != nil {
			t.Fatalf("call %d after idle refused: %v", i, err)
		}
	}
	if l.Allow("bob", "g", "e", "f") == nil {
		t.Fatal("bucket refilled beyond its burst")
	}
}

func TestPerFunctionAndOverrides(t *testing.T) {
	t.Parallel()
	l, c := newLimiter(t, ratelimit.Config{
		PerUser:     ratelimit.Rate{PerSecond: 100, Burst: 100},
		PerFunction: ratelimit.Rate{PerSecond: 1, Burst: 2},
		Functions: map[string]ratelimit.Rate{
			"player.ban":           {PerSecond: 1, Burst: 1},
			"demo/prod/player.ban": {PerSecond: 0.1, Burst: 1},
			"free":                 {},
		},
	})
	// Two users share the function's bucket.
	if l.Allow("a", "g", "e", "x") != nil || l.Allow("b", "g", "e", "x") != nil {
		t.Fatal("within function burst refused")
	}
	err := l.Allow("c", "g", "e", "x")
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "function g/e/x") {
		t.Fatalf("function over burst: %v", err)
	}
	// The same function id in another scope has its own bucket.
	if err := l.Allow("c", "g", "e2", "x"); err != nil {
		t.Fatalf("other scope refused: %v", err)
	}
	// Overrides: the most specific key wins.
	if l.Allow("a", "demo", "prod", "player.ban") != nil || l.Allow("a", "demo", "prod", "player.ban") == nil {
		t.Fatal("demo/prod/player.ban override not applied")
	}
	if d, _ := ratelimit.RetryAfter(l.Allow("a", "demo", "prod", "player.ban")); d != 10*time.Second {
		t.Fatalf("retry after = %v, want 10s", d)
	}
	if l.Allow("a", "other", "prod", "player.ban") != nil || l.Allow("a", "other", "prod", "player.ban") == nil {
		t.Fatal("player.ban override not applied")
	}
	for range 50 {
		if err := l.Allow("a", "g", "e", "free"); err != nil {
			t.Fatalf("unlimited function refused: %v", err)
		}
	}
	c.Advance(time.Second)
}

func TestRefusalSpendsNothing(t *testing.T) {
	t.Parallel()
	l, _ := newLimiter(t, ratelimit.Config{
		PerUser:     ratelimit.Rate{PerSecond: 1, Burst: 2},
		PerFunction: ratelimit.Rate{PerSecond: 1, Burst: 1},
	})
	if err := l.Allow("bob", "g", "e", "busy"); err != nil {
		t.Fatal(err)
	}
	// Refused by the function: bob's second token must survive.
	if l.Allow("bob", "g", "e", "busy") == nil {
		t.Fatal("function bucket did not refuse")
	}
	if err := l.Allow("bob", "g", "e", "other"); err != nil {
		t.Fatalf("a refused call spent the user's token: %v", err)
	}
	// Empty user or function skips that bucket.
	if err := l.Allow("", "g", "e", "fresh"); err != nil {
		t.Fatal(err)
	}
}

func TestBoundedAndConcurrent(t *testing.T) {
	t.Parallel()
	l, _ := newLimiter(t, ratelimit.Config{PerUser: ratelimit.Rate{PerSecond: 1, Burst: 5}, MaxKeys: 50})
	var wg sync.WaitGroup
	var allowed atomic.Int64
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if l.Allow(fmt.Sprintf("u%d-%d", w, i%100), "", "", "") == nil {
					allowed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := l.Len(); n > 50 {
		t.Fatalf("%d buckets held, bound is 50", n)
	}
	if allowed.Load() == 0 {
		t.Fatal("nothing allowed")
	}
	// One hot user under contention: exactly the burst gets through.
	hot, _ := newLimiter(t, ratelimit.Config{PerUser: ratelimit.Rate{PerSecond: 1, Burst: 5}})
	allowed.Store(0)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				if hot.Allow("hot", "", "", "") == nil {
					allowed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if allowed.Load() != 5 {
		t.Fatalf("%d calls allowed for a burst of 5 at a frozen clock", allowed.Load())
	}
}

func TestConfigAndHelpers(t *testing.T) {
	t.Parallel()
	for _, bad := range []ratelimit.Config{
		{PerUser: ratelimit.Rate{PerSecond: -1, Burst: 1}},
		{PerFunction: ratelimit.Rate{PerSecond: math.NaN(), Burst: 1}},
		{Functions: map[string]ratelimit.Rate{"f": {PerSecond: 1, Burst: -2}}},
	} {
		if _, err := ratelimit.New(bad); err == nil {
			t.Errorf("config %+v accepted", bad)
		}
	}
	if _, ok := ratelimit.RetryAfter(status.Error(codes.ResourceExhausted, "other")); ok {
		t.Fatal("RetryAfter on a foreign error")
	}
	if _, ok := ratelimit.RetryAfterHeader(nil); ok {
		t.Fatal("RetryAfterHeader on nil")
	}
	unlimited, _ := newLimiter(t, ratelimit.Config{})
	for range 1000 {
		if err := unlimited.Allow("u", "g", "e", "f"); err != nil {
			t.Fatal(err)
		}
	}
	if unlimited.Len() != 0 {
		t.Fatal("an unlimited limiter keeps buckets")
	}
}

func TestLimitsSharedByNodes(t *testing.T) {
	t.Parallel()
	var nodes atomic.Int64
	nodes.Store(2)
	l, c := newLimiter(t, ratelimit.Config{PerUser: ratelimit.Rate{PerSecond: 4, Burst: 10},
		Nodes: func() int { return int(nodes.Load()) }})
	for i := range 5 {
		if err := l.Allow("bob", "g", "e", "f"); err != nil {
			t.Fatalf("call %d within half the burst refused: %v", i, err)
		}
	}
	err := l.Allow("bob", "g", "e", "f")
	if d, ok := ratelimit.RetryAfter(err); !ok || d != 500*time.Millisecond {
		t.Fatalf("6th call with 2 nodes: %v; want a refusal retrying after 500ms (2/s here)", err)
	}
	nodes.Store(1) // the other node left: this one enforces the whole rate
	c.Advance(250 * time.Millisecond)
	if err := l.Allow("bob", "g", "e", "f"); err != nil {
		t.Fatalf("after a refill at the full rate: %v", err)
	}
}
