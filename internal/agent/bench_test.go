package agent

import (
	"fmt"
	"testing"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"google.golang.org/protobuf/proto"
)

// BenchmarkInstanceChange is what an agent with 1,000 instances sends when
// one more connects: a full registration (before UpdateInstances) or a
// delta. It reports the request size as wire-B/op.
func BenchmarkInstanceChange(b *testing.B) {
	const m = 1000
	setup := func() *instances {
		t := newInstances()
		for i := range m {
			t.put(inst(fmt.Sprintf("gs-%04d", i), "inc-1", "player.get", "player.ban", "room.list", "room.join", "chat.send"))
		}
		t.snapshot()
		return t
	}
	b.Run("full", func(b *testing.B) {
		t := setup()
		size := 0
		for i := 0; b.Loop(); i++ {
			t.put(inst(fmt.Sprintf("new-%d", i%2), "inc-1", "player.get"))
			fns, descs, infos, departed := t.snapshot()
			req := &croupierv1.RegisterAgentRequest{AgentId: "a", GameId: "g", Env: "e", Functions: fns, Descriptors: descs, Instances: infos, Departed: departed}
			size = proto.Size(req)
		}
		b.ReportMetric(float64(size), "wire-B/op")
	})
	b.Run("delta", func(b *testing.B) {
		t := setup()
		size := 0
		for i := 0; b.Loop(); i++ {
			t.put(inst(fmt.Sprintf("new-%d", i%2), "inc-1", "player.get"))
			req, _ := t.delta("a")
			size = proto.Size(req)
		}
		b.ReportMetric(float64(size), "wire-B/op")
	})
}
