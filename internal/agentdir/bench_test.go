package agentdir_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	agentv1 "github.com/croupier/croupier/api/croupier/agent/v1"
)

// BenchmarkInvoke measures one call's cost on the caller's side with the
// agent on this node (the baseline: the fake tunnel answers at once) and on
// another node of a 3-node routed cluster (forwarded over NATS and back).
// Callers: GOMAXPROCS goroutines (b.RunParallel). cpu-µs/op is this
// process's CPU time per call (all three nodes and their NATS servers run
// here), the figure that load from other processes changes least.
func BenchmarkInvoke(b *testing.B) {
	nodes := startNodesB(b)
	connectB(b, nodes[0], "a1")
	deadline := time.Now().Add(10 * time.Second)
	for nodes[2].dir.Holder("a1") != "n1" {
		if time.Now().After(deadline) {
			b.Fatal("n3 never learned a1")
		}
		time.Sleep(10 * time.Millisecond)
	}
	run := func(b *testing.B, node *testNode) {
		b.ReportAllocs()
		cpu0 := processCPU()
		defer func() { b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op") }()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := node.dir.Invoke(ctx, "a1", &agentv1.InvokeRequest{InvocationId: "x"})
				cancel()
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.Run("direct", func(b *testing.B) { run(b, nodes[0]) })
	b.Run("forwarded", func(b *testing.B) { run(b, nodes[2]) })
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
