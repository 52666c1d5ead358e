package invoke_test

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/invoke"
	"github.com/croupier/croupier/internal/registry"
)

// TestCallsDuringRegistrationChurn runs lb, hash and broadcast calls while
// agents register, change instances and leave. Every call either reaches an
// instance that was registered (and is never torn or mis-routed) or fails
// with NO_INSTANCE when the function momentarily has none; -race checks the
// lock-free snapshot reads against the writers.
func TestCallsDuringRegistrationChurn(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addAgent(t, "stable", []string{"1"}, fnStats) // keeps the function registered
	const writers, callers, rounds = 2, 3, 150
	var stop atomic.Bool
	var wg, cwg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range rounds {
				id := fmt.Sprintf("churn-%d-%d", w, i%5)
				if i%3 == 2 {
					h.reg.Remove(id)
					continue
				}
				a := registry.Agent{ID: id, GameID: game, Env: env, Descriptors: []*croupierv1.FunctionDescriptor{{Id: fnStats}},
					Instances: []registry.Instance{{ID: "1", Functions: []string{fnStats}}, {ID: fmt.Sprint(2 + i%2), Functions: []string{fnStats}}}}
				if err := h.reg.Upsert(a); err != nil {
					t.Error(err) // not Fatal: this is not the test's goroutine
					return
				}
			}
		})
	}
	errs := make(chan error, callers)
	modes := []string{invoke.ModeLB, invoke.ModeHash, invoke.ModeBroadcast}
	for c := range callers {
		cwg.Go(func() {
			mode := modes[c%len(modes)]
			for i := 0; !stop.Load(); i++ {
				resp, err := h.invoke(fnStats, nil, &croupierv1.InvokeOptions{RoutingMode: mode, HashKey: fmt.Sprint("player-", i)})
				if err != nil {
					if apierr.Info(err).GetCode() != apierr.CodeNoInstance {
						errs <- fmt.Errorf("%s call: %v", mode, err)
						return
					}
					continue
				}
				served := []string{resp.GetInstance()}
				if mode == invoke.ModeBroadcast {
					served = served[:0]
					for _, r := range resp.GetResults() {
						served = append(served, r.GetInstance())
					}
				}
				for _, key := range served {
					if !strings.HasPrefix(key, "stable/") && !strings.HasPrefix(key, "churn-") {
						errs <- fmt.Errorf("%s call served by %q", mode, key)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	stop.Store(true)
	cwg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Every call the fake caller saw went to the instance it was routed to.
	for _, c := range h.caller.recorded() {
		if c.req.GetFunctionId() != fnStats || c.req.GetInstanceId() == "" {
			t.Fatalf("call %v", c.req)
		}
	}
}
