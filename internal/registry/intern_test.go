package registry

import (
	"runtime"
	"testing"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"google.golang.org/protobuf/types/known/structpb"
)

func schemaDesc(t *testing.T, id, maxLen string) *croupierv1.FunctionDescriptor {
	t.Helper()
	s, err := structpb.NewStruct(map[string]any{"type": "object", "properties": map[string]any{"p": map[string]any{"maxLength": maxLen}}})
	if err != nil {
		t.Fatal(err)
	}
	return &croupierv1.FunctionDescriptor{Id: id, Version: "1", ParamsSchema: s}
}

func registered(r *Registry, id string) []*croupierv1.FunctionDescriptor {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.agents[id].a.Descriptors
}

// Agents registering equal descriptors share one copy; what callers passed
// in or get out stays private.
func TestAgentsShareEqualDescriptors(t *testing.T) {
	r := New(Options{})
	mk := func(id, maxLen string) Agent {
		return Agent{ID: id, GameID: "g", Env: "e", Instances: []Instance{{ID: "i", Functions: []string{"f"}}},
			Descriptors: []*croupierv1.FunctionDescriptor{schemaDesc(t, "f", maxLen)}}
	}
	a, b, c := mk("a", "8"), mk("b", "8"), mk("c", "9")
	for _, x := range []Agent{a, b, c} {
		if err := r.Upsert(x); err != nil {
			t.Fatal(err)
		}
	}
	da, db, dc := registered(r, "a")[0], registered(r, "b")[0], registered(r, "c")[0]
	if da != db {
		t.Error("agents a and b registered equal descriptors but hold two copies")
	}
	if da == dc {
		t.Error("agents a and c registered different descriptors but share one")
	}
	if da == a.Descriptors[0] || db == b.Descriptors[0] {
		t.Error("the registry holds the caller's descriptor, not a copy")
	}
	a.Descriptors[0].Version = "changed by the caller"
	if got := registered(r, "b")[0].GetVersion(); got != "1" {
		t.Errorf("a caller's change reached the registry: version %q", got)
	}
	out, _ := r.Agent("b")
	if out.Descriptors[0] == db {
		t.Error("Agent returned the shared descriptor, not a copy")
	}
	if err := r.UpdateInstances("c", nil, nil, []*croupierv1.FunctionDescriptor{schemaDesc(t, "f", "8")}); err != nil {
		t.Fatal(err)
	}
	if registered(r, "c")[0] != da {
		t.Error("UpdateInstances with an equal descriptor did not share the copy")
	}
}

// A descriptor no agent holds any more is forgotten.
func TestInternedDescriptorsAreForgotten(t *testing.T) {
	r := New(Options{})
	for i, id := range []string{"a", "b"} {
		err := r.Upsert(Agent{ID: id, GameID: "g", Env: "e", Instances: []Instance{{ID: "i", Functions: []string{"f"}}},
			Descriptors: []*croupierv1.FunctionDescriptor{schemaDesc(t, "f", string(rune('1'+i)))}})
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := r.descs.size(); n != 2 {
		t.Fatalf("%d interned descriptors, want 2", n)
	}
	r.Remove("a")
	r.Remove("b")
	// Cleanups run after a collection, on the runtime's own goroutine.
	deadline := time.Now().Add(10 * time.Second)
	for r.descs.size() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d interned descriptors left after both agents left", r.descs.size())
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}
