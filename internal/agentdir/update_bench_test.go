package agentdir

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/croupier/croupier/internal/cluster"
	"github.com/croupier/croupier/internal/registry"
)

// BenchmarkApplyUpdate measures what one registration change of a remote
// agent costs a receiving node, by instance count: the whole registration
// (JSON, then the registry's Upsert: what a change of the agent's own
// fields or a sync sends) and a delta for one restarted instance (what an
// instance change sends; UpdateInstances).
func BenchmarkApplyUpdate(b *testing.B) {
	node, err := cluster.Start(context.Background(), cluster.Config{NodeID: "recv"})
	if err != nil {
		b.Fatal(err)
	}
	defer node.Close()
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("instances=%d", n), func(b *testing.B) {
			reg := registry.New(registry.Options{})
			d := New(Config{}, node, reg, nil, noTunnel{})
			a := benchAgent(n)
			u := agentUpdate{Node: "holder", Agent: a}
			b.ReportAllocs()
			var size int
			for i := 0; b.Loop(); i++ {
				u.Seq = uint64(i + 1)
				data, _ := json.Marshal(u)
				size = len(data)
				d.apply(data)
			}
			b.ReportMetric(float64(size), "bytes/update")
		})
		// The same agent, one instance restarting per change: a delta.
		b.Run(fmt.Sprintf("instances=%d/delta", n), func(b *testing.B) {
			reg := registry.New(registry.Options{})
			d := New(Config{}, node, reg, nil, noTunnel{})
			a := benchAgent(n)
			full, _ := json.Marshal(agentUpdate{Node: "holder", Seq: 1, Agent: a})
			d.apply(full)
			b.ReportAllocs()
			var size int
			for i := 0; b.Loop(); i++ {
				in := a.Instances[i%n]
				in.Incarnation = fmt.Sprintf("re-%d", i)
				data, _ := json.Marshal(agentUpdate{Node: "holder", Seq: uint64(i + 2), Base: uint64(i + 1), Delta: true,
					Agent: registry.Agent{ID: "agent-1"}, Upsert: []registry.Instance{in}})
				size = len(data)
				d.apply(data)
			}
			if got, _ := reg.Agent("agent-1"); len(got.Instances) != n {
				b.Fatalf("%d instances after the deltas, want %d", len(got.Instances), n)
			}
			b.ReportMetric(float64(size), "bytes/update")
		})
	}
}

type noTunnel struct{ Tunnel }

func (noTunnel) Connected(string) bool { return false }

// benchAgent is one agent with n instances serving three functions.
func benchAgent(n int) registry.Agent {
	a := registry.Agent{ID: "agent-1", GameID: "game", Env: "prod", Version: "1.0.0", Addr: "10.0.0.1:7000"}
	for i := range n {
		a.Instances = append(a.Instances, registry.Instance{ID: fmt.Sprintf("gs-%05d", i),
			Functions: []string{"player.get", "player.ban", "match.start"}, Labels: map[string]string{"region": "eu", "map": "harbor"},
			Incarnation: fmt.Sprintf("inc-%08d", i)})
	}
	return a
}
