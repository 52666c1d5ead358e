package routing

import (
	"container/list"
	"slices"
	"sync"

	"github.com/cespare/xxhash/v2"
)

// DefaultRingCacheCapacity is how many rings a RingCache keeps when
// NewRingCache is given no capacity.
const DefaultRingCacheCapacity = 256

// RingCache memoises rings by membership so that hash routing, which sees
// the same instance set on call after call, builds a ring only when the
// set changes. It is a bounded LRU and safe for concurrent use.
type RingCache struct {
	capacity int
	vnodes   int

	mu      sync.Mutex
	entries map[uint64]*list.Element
	order   *list.List // front = most recently used; values are *ringEntry
}

type ringEntry struct {
	key  uint64
	ring *Ring
}

// NewRingCache returns a cache of at most capacity rings (default
// DefaultRingCacheCapacity) with vnodes points per member (default
// DefaultVirtualNodes).
func NewRingCache(capacity, vnodes int) *RingCache {
	if capacity <= 0 {
		capacity = DefaultRingCacheCapacity
	}
	if vnodes <= 0 {
		vnodes = DefaultVirtualNodes
	}
	return &RingCache{capacity: capacity, vnodes: vnodes, entries: map[uint64]*list.Element{}, order: list.New()}
}

// Ring returns the ring over members (order and duplicates do not matter).
func (c *RingCache) Ring(members []string) *Ring {
	ms := slices.Clone(members)
	ms = slices.DeleteFunc(ms, func(m string) bool { return m == "" })
	slices.Sort(ms)
	ms = slices.Compact(ms)
	d := xxhash.New()
	for _, m := range ms {
		_, _ = d.WriteString(m)
		_, _ = d.Write([]byte{0}) // separator: {"ab"} and {"a","b"} differ
	}
	key := d.Sum64()

	c.mu.Lock()
	if el, ok := c.entries[key]; ok && slices.Equal(el.Value.(*ringEntry).ring.members, ms) {
		c.order.MoveToFront(el)
		r := el.Value.(*ringEntry).ring
		c.mu.Unlock()
		return r
	}
	c.mu.Unlock()

	// Build outside the lock; a racing builder of the same set produces an
	// identical ring, and whichever is stored last wins harmlessly.
	r := NewRing(ms, c.vnodes)

	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[key]; ok {
		// Same key: either the same set (refresh) or a 64-bit collision
		// (replace; the older set just rebuilds on its next use).
		el.Value.(*ringEntry).ring = r
		c.order.MoveToFront(el)
		return r
	}
	c.entries[key] = c.order.PushFront(&ringEntry{key: key, ring: r})
	for c.order.Len() > c.capacity {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.entries, oldest.Value.(*ringEntry).key)
	}
	return r
}

// Len returns the number of cached rings.
func (c *RingCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
