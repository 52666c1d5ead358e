package invoke_test

import (
	"context"
	"fmt"
	"testing"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/invoke"
)

// BenchmarkPrepare is the server's routing work for one call (checks,
// schema validation, target choice; no tunnel) in fleets of 10 and 5,000
// agents: the goal is a cost independent of N.
func BenchmarkPrepare(b *testing.B) {
	for _, n := range []int{10, 5000} {
		for _, mode := range []string{invoke.ModeLB, invoke.ModeHash} {
			b.Run(fmt.Sprintf("%s/N=%d", mode, n), func(b *testing.B) {
				h := newHarness(b)
				for i := range n {
					h.addAgent(b, fmt.Sprintf("agent-%05d", i), []string{"gs-1"}, fnGrant, fnStats)
				}
				opts := &croupierv1.InvokeOptions{RoutingMode: mode, HashKey: "player-42"}
				payload := grantPayload(1)
				ctx := context.Background()
				if _, err := h.svc.Prepare(ctx, game, env, fnGrant, payload, opts); err != nil { // warm caches, build the ring
					b.Fatal(err)
				}
				b.ReportAllocs()
				for b.Loop() {
					if _, err := h.svc.Prepare(ctx, game, env, fnGrant, payload, opts); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
