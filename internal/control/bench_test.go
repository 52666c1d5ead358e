package control

import (
	"context"
	"fmt"
	"testing"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"google.golang.org/protobuf/types/known/structpb"
)

// benchFleet registers n agents, each with one instance serving 5 functions
// whose descriptors carry a params schema, like bench/scale's fleet.
func benchFleet(b *testing.B, n int) *harness {
	h := newHarness(b)
	schema, _ := structpb.NewStruct(map[string]any{"type": "object", "properties": map[string]any{"player_id": map[string]any{"type": "string"}}})
	for i := range n {
		id := fmt.Sprintf("agent-%05d", i)
		h.tunnel.set(id, true)
		req := &croupierv1.RegisterAgentRequest{AgentId: id, GameId: game, Env: env, Version: "1"}
		var fns []string
		for f := range 5 {
			fn := fmt.Sprintf("bench.f%d", f)
			fns = append(fns, fn)
			req.Descriptors = append(req.Descriptors, &croupierv1.FunctionDescriptor{Id: fn, Version: "1", ParamsSchema: schema})
		}
		req.Instances = []*croupierv1.InstanceInfo{{InstanceId: "gs-1", Functions: fns}}
		if _, err := h.svc.RegisterAgent(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
	return h
}

// BenchmarkHeartbeat is one agent's heartbeat in a fleet of 1,000: the
// service's share of the heartbeat RPC (the gRPC/TLS part is in
// bench/scale's idle CPU).
func BenchmarkHeartbeat(b *testing.B) {
	h := benchFleet(b, 1000)
	ctx := agentCtx("agent-00500", game, env)
	req := &croupierv1.HeartbeatRequest{AgentId: "agent-00500"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.svc.Heartbeat(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRegisterIntoFleet is one more agent registering (and its
// re-registration with a changed instance) into a fleet of N.
func BenchmarkRegisterIntoFleet(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprint("N=", n), func(b *testing.B) {
			h := benchFleet(b, n)
			h.tunnel.set("extra", true)
			schema, _ := structpb.NewStruct(map[string]any{"type": "object"})
			req := &croupierv1.RegisterAgentRequest{AgentId: "extra", GameId: game, Env: env, Version: "1",
				Descriptors: []*croupierv1.FunctionDescriptor{{Id: "bench.f0", Version: "1", ParamsSchema: schema}}}
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				i++
				req.Instances = []*croupierv1.InstanceInfo{{InstanceId: fmt.Sprint("gs-", i%2), Functions: []string{"bench.f0"}}}
				if _, err := h.svc.RegisterAgent(context.Background(), req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
