package registry

import (
	"runtime"
	"sync"
	"weak"

	"google.golang.org/protobuf/proto"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
)

// interner keeps one immutable copy of each distinct descriptor, so a fleet
// of agents registering the same functions holds their descriptors (and
// their schemas, maps of structpb values: ~1 KiB each) once instead of once
// per agent — about 5 KiB per agent with 5 functions (bench/scale heap
// profile at N=5,000). Entries are weak: a descriptor no agent holds any
// more is collected, and a cleanup drops its entry.
type interner struct {
	mu sync.Mutex
	m  map[string]weak.Pointer[croupierv1.FunctionDescriptor] // by deterministic encoding
}

// intern returns the registry's copy of d: a shared one if an equal
// descriptor is held, else a new private copy. The result must never be
// modified.
func (in *interner) intern(d *croupierv1.FunctionDescriptor) *croupierv1.FunctionDescriptor {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(d)
	if err != nil { // not encodable: keep a private copy, as before interning
		return proto.Clone(d).(*croupierv1.FunctionDescriptor)
	}
	key := string(b)
	in.mu.Lock()
	defer in.mu.Unlock()
	if p := in.m[key].Value(); p != nil {
		return p
	}
	c := proto.Clone(d).(*croupierv1.FunctionDescriptor)
	if in.m == nil {
		in.m = map[string]weak.Pointer[croupierv1.FunctionDescriptor]{}
	}
	in.m[key] = weak.Make(c)
	runtime.AddCleanup(c, in.forget, key)
	return c
}

// forget drops key's entry once its descriptor is collected, unless a newer
// copy took its place meanwhile.
func (in *interner) forget(key string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.m[key].Value() == nil {
		delete(in.m, key)
	}
}

// size is the number of entries (tests).
func (in *interner) size() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.m)
}
