package schema

import (
	"container/list"
	"crypto/sha256"
	"sync"

	"google.golang.org/protobuf/types/known/structpb"
)

// DefaultCacheCapacity is the number of compiled schemas a Cache keeps when
// NewCache is given no capacity.
const DefaultCacheCapacity = 1024

// Cache memoises compiled schemas, keyed by a SHA-256 of the schema's
// canonical JSON, so the invoke path compiles each distinct schema once.
// It is a bounded LRU; failed compiles are cached too, so a bad schema
// costs one compile rather than one per call. Safe for concurrent use.
//
// It also remembers which *structpb.Struct values it has seen: the invoke
// path asks for the schema of the same registered descriptor on every
// call, and encoding that schema to JSON and hashing it cost more than the
// validation itself. So a Struct given to Get must not be modified
// afterwards (registry descriptors never are).
type Cache struct {
	capacity int

	mu      sync.Mutex
	entries map[[sha256.Size]byte]*list.Element
	order   *list.List // front = most recently used; values are *cacheEntry
	// seen maps Structs already looked up to their entry; at most
	// capacity of them, forgotten all at once when full.
	seen   map[*structpb.Struct]*list.Element
	hits   uint64
	misses uint64
}

type cacheEntry struct {
	key    [sha256.Size]byte
	schema *Schema
	err    error
}

// NewCache returns a cache holding at most capacity schemas
// (DefaultCacheCapacity if capacity <= 0).
func NewCache(capacity int) *Cache {
	if capacity <= 0 {
		capacity = DefaultCacheCapacity
	}
	return &Cache{
		capacity: capacity,
		entries:  make(map[[sha256.Size]byte]*list.Element),
		order:    list.New(),
		seen:     make(map[*structpb.Struct]*list.Element),
	}
}

// Get returns the compiled form of s, compiling it on first use (see the
// package-level Compile for the semantics).
func (c *Cache) Get(s *structpb.Struct) (*Schema, error) {
	c.mu.Lock()
	if el, ok := c.seen[s]; ok {
		e := el.Value.(*cacheEntry)
		if c.entries[e.key] == el { // not evicted since
			c.order.MoveToFront(el)
			c.hits++
			c.mu.Unlock()
			return e.schema, e.err
		}
		delete(c.seen, s)
	}
	c.mu.Unlock()

	raw, err := canonicalJSON(s)
	if err != nil {
		return nil, err
	}
	if raw == nil {
		return &Schema{}, nil
	}
	key := sha256.Sum256(raw)

	c.mu.Lock()
	if el, ok := c.entries[key]; ok {
		c.order.MoveToFront(el)
		c.hits++
		c.remember(s, el)
		e := el.Value.(*cacheEntry)
		c.mu.Unlock()
		return e.schema, e.err
	}
	c.misses++
	c.mu.Unlock()

	// Compile outside the lock: compiles can take milliseconds and must not
	// serialise unrelated lookups. Two callers racing on the same new
	// schema both compile; the results are equivalent and one is kept.
	compiled, cerr := compileJSON(raw)

	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[key]; ok {
		c.order.MoveToFront(el)
		c.remember(s, el)
		e := el.Value.(*cacheEntry)
		return e.schema, e.err
	}
	el := c.order.PushFront(&cacheEntry{key: key, schema: compiled, err: cerr})
	c.entries[key] = el
	c.remember(s, el)
	for c.order.Len() > c.capacity {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.entries, oldest.Value.(*cacheEntry).key)
	}
	return compiled, cerr
}

// remember records that s compiles to el's entry. Called with mu held.
func (c *Cache) remember(s *structpb.Struct, el *list.Element) {
	if len(c.seen) >= c.capacity {
		clear(c.seen)
	}
	c.seen[s] = el
}

// CacheStats is a point-in-time view of a Cache, for metrics.
type CacheStats struct {
	Len    int
	Hits   uint64
	Misses uint64
}

// Stats returns the current size and hit/miss counters.
func (c *Cache) Stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return CacheStats{Len: c.order.Len(), Hits: c.hits, Misses: c.misses}
}
