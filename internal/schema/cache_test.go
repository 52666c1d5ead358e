package schema_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/croupier/croupier/internal/schema"
)

func TestCacheReusesCompiledSchemas(t *testing.T) {
	t.Parallel()
	c := schema.NewCache(4)
	a, err := c.Get(mustStruct(t, `{"type":"object","properties":{"n":{"type":"integer"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	// Same content, different key order and a distinct Struct value.
	b, err := c.Get(mustStruct(t, `{"properties":{"n":{"type":"integer"}},"type":"object"}`))
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Error("equal schemas compiled twice; want one cache entry")
	}
	if st := c.Stats(); st.Len != 1 || st.Hits != 1 || st.Misses != 1 {
		t.Errorf("Stats = %+v, want Len 1, Hits 1, Misses 1", st)
	}
	if verr := b.Validate(decode(t, `{"n":"x"}`)); verr == nil || verr.Pointer != "/n" {
		t.Errorf("cached schema Validate = %v, want failure at /n", verr)
	}
	empty, err := c.Get(nil)
	if err != nil || !empty.AcceptsAll() {
		t.Errorf("Compile(nil) = %v, %v; want accept-all", empty, err)
	}
}

func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	c := schema.NewCache(2)
	src := func(i int) string { return fmt.Sprintf(`{"maxLength":%d}`, i) }
	first, _ := c.Get(mustStruct(t, src(1)))
	_, _ = c.Get(mustStruct(t, src(2)))
	again, _ := c.Get(mustStruct(t, src(1))) // 1 is now most recent
	if again != first {
		t.Fatal("entry 1 evicted too early")
	}
	_, _ = c.Get(mustStruct(t, src(3))) // evicts 2
	if st := c.Stats(); st.Len != 2 {
		t.Fatalf("Len = %d, want 2 (capacity)", st.Len)
	}
	if again, _ := c.Get(mustStruct(t, src(1))); again != first {
		t.Error("entry 1 (recently used) was evicted instead of entry 2")
	}
	before := c.Stats().Misses
	_, _ = c.Get(mustStruct(t, src(2)))
	if c.Stats().Misses != before+1 {
		t.Error("entry 2 should have been evicted and recompiled")
	}
}

func TestCacheRemembersFailures(t *testing.T) {
	t.Parallel()
	c := schema.NewCache(0)
	bad := mustStruct(t, `{"type":"nope"}`)
	_, err1 := c.Get(bad)
	_, err2 := c.Get(bad)
	var ce *schema.CompileError
	if !errors.As(err1, &ce) || err1 != err2 {
		t.Fatalf("errors = %v, %v; want the same cached *CompileError", err1, err2)
	}
	if st := c.Stats(); st.Misses != 1 || st.Hits != 1 {
		t.Errorf("Stats = %+v, want one compile", st)
	}
}

func TestCacheConcurrentUse(t *testing.T) {
	t.Parallel()
	c := schema.NewCache(8)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				s, err := c.Get(mustStruct(t, fmt.Sprintf(`{"minimum":%d}`, (g+i)%16)))
				if err != nil {
					t.Errorf("Compile: %v", err)
					return
				}
				if s.Validate(float64(100)) != nil {
					t.Errorf("100 rejected by minimum <= 15")
					return
				}
			}
		})
	}
	wg.Wait()
	if st := c.Stats(); st.Len > 8 {
		t.Errorf("Len = %d exceeds capacity 8", st.Len)
	}
}

// The same Struct asked again is found without re-encoding it, and that
// shortcut keeps the LRU's order and eviction exact.
func TestCacheRemembersStructsWithinLRU(t *testing.T) {
	t.Parallel()
	c := schema.NewCache(2)
	one, two, three := mustStruct(t, `{"maxLength":1}`), mustStruct(t, `{"maxLength":2}`), mustStruct(t, `{"maxLength":3}`)
	first, _ := c.Get(one)
	_, _ = c.Get(two)
	if again, _ := c.Get(one); again != first { // one is now most recent
		t.Fatal("the same Struct compiled twice")
	}
	_, _ = c.Get(three) // evicts two
	if again, _ := c.Get(one); again != first {
		t.Error("entry one (recently used through the same Struct) was evicted instead of two")
	}
	before := c.Stats()
	_, _ = c.Get(two)
	if st := c.Stats(); st.Misses != before.Misses+1 {
		t.Errorf("Stats = %+v after asking for the evicted Struct again, want one more miss than %+v", st, before)
	}
	if st := c.Stats(); st.Len != 2 || st.Hits != 2 || st.Misses != 4 {
		t.Errorf("Stats = %+v, want Len 2, Hits 2, Misses 4", st)
	}
}
