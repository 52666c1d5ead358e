package registry_test

import (
	"fmt"
	"testing"

	"github.com/croupier/croupier/internal/registry"
)

// benchRegistry holds 100 agents with 4 instances each, all serving the
// same 20 functions in one scope: the invoke path's worst realistic case.
func benchRegistry(b *testing.B) *registry.Registry {
	r := registry.New(registry.Options{})
	var fns []string
	for f := range 20 {
		fns = append(fns, fmt.Sprintf("fn%02d", f))
	}
	for a := range 100 {
		var ins []registry.Instance
		for i := range 4 {
			ins = append(ins, inst(fmt.Sprint("i", i), fns...))
		}
		if err := r.Upsert(withDescs(agent(fmt.Sprint("agent-", a), "g", "e", ins...), desc("fn00", "1"))); err != nil {
			b.Fatal(err)
		}
	}
	return r
}

// BenchmarkInvokeLookups is what the invoke path reads: the function's
// routing snapshot (descriptor and instances), without a lock or a copy.
func BenchmarkInvokeLookups(b *testing.B) {
	r := benchRegistry(b)
	b.ReportAllocs()
	for b.Loop() {
		rt, ok := r.Route("g", "e", "fn00")
		if !ok || rt.Descriptor == nil || len(rt.Instances) != 400 {
			b.Fatal("wrong route")
		}
	}
}

func BenchmarkUpsertUnchanged(b *testing.B) {
	r := benchRegistry(b)
	a, _ := r.Agent("agent-7")
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Upsert(a); err != nil {
			b.Fatal(err)
		}
	}
}
