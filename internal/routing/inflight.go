package routing

import (
	"sync"
	"sync/atomic"
)

// InFlight counts calls in flight per instance key. Counters are atomic;
// the map is guarded by an RWMutex whose read side is held across each
// increment, so Forget (write side) can drop idle counters without racing
// a concurrent Inc. The zero value is not usable; call NewInFlight.
type InFlight struct {
	mu       sync.RWMutex
	counters map[string]*atomic.Int64
}

// NewInFlight returns an empty tracker.
func NewInFlight() *InFlight {
	return &InFlight{counters: make(map[string]*atomic.Int64)}
}

// Inc records a call starting on key and returns the new count.
func (t *InFlight) Inc(key string) int64 {
	t.mu.RLock()
	c, ok := t.counters[key]
	if ok {
		n := c.Add(1)
		t.mu.RUnlock()
		return n
	}
	t.mu.RUnlock()

	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok = t.counters[key]
	if !ok {
		c = new(atomic.Int64)
		t.counters[key] = c
	}
	return c.Add(1)
}

// Dec records a call on key finishing and returns the new count. Extra
// Decs are ignored (the count never goes below zero), so a double release
// cannot make an instance look less loaded than idle.
func (t *InFlight) Dec(key string) int64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	c, ok := t.counters[key]
	if !ok {
		return 0
	}
	for {
		n := c.Load()
		if n <= 0 {
			return 0
		}
		if c.CompareAndSwap(n, n-1) {
			return n - 1
		}
	}
}

// Get returns the number of calls in flight on key.
func (t *InFlight) Get(key string) int64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if c, ok := t.counters[key]; ok {
		return c.Load()
	}
	return 0
}

// Acquire is Inc with a release function that Decs exactly once however
// often it is called, for `defer release()`.
func (t *InFlight) Acquire(key string) (release func()) {
	t.Inc(key)
	var once sync.Once
	return func() { once.Do(func() { t.Dec(key) }) }
}

// Forget drops the counters of keys that have nothing in flight, so the
// map does not grow with every instance that ever existed. Call it when
// instances leave the registry; busy keys are kept until they drain and a
// later Forget.
func (t *InFlight) Forget(keys ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range keys {
		if c, ok := t.counters[k]; ok && c.Load() == 0 {
			delete(t.counters, k)
		}
	}
}

// Len returns the number of tracked keys, for tests and metrics.
func (t *InFlight) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.counters)
}
