package registry_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/registry"
	"google.golang.org/protobuf/proto"
)

type regKey struct{ game, env, fn string }

// replica rebuilds registry state from a watch stream, checking on the way
// that every event is consistent with the state before it.
type replica struct {
	filter registry.Filter
	state  map[regKey]*croupierv1.FunctionRegistration
}

func (rp *replica) apply(ev *croupierv1.RegistrationEvent) error {
	reg := ev.GetRegistration()
	k := regKey{reg.GetGameId(), reg.GetEnv(), reg.GetFunctionId()}
	if (rp.filter.Game != "" && k.game != rp.filter.Game) || (rp.filter.Env != "" && k.env != rp.filter.Env) {
		return fmt.Errorf("event for %v outside filter %+v", k, rp.filter)
	}
	_, exists := rp.state[k]
	switch ev.GetType() {
	case croupierv1.RegistrationEventType_ADDED:
		if exists {
			return fmt.Errorf("ADDED %v, which exists", k)
		}
		rp.state[k] = reg
	case croupierv1.RegistrationEventType_UPDATED:
		if !exists {
			return fmt.Errorf("UPDATED %v, which does not exist", k)
		}
		rp.state[k] = reg
	case croupierv1.RegistrationEventType_REMOVED:
		if !exists {
			return fmt.Errorf("REMOVED %v, which does not exist", k)
		}
		delete(rp.state, k)
	default:
		return fmt.Errorf("unexpected live event %v", ev.GetType())
	}
	return nil
}

// TestConcurrentMutationsAndWatchers hammers the registry from several
// goroutines while watchers come and go, then checks that every watcher
// that stayed rebuilt exactly the registry's final state from its events.
func TestConcurrentMutationsAndWatchers(t *testing.T) {
	t.Parallel()
	r := registry.New(registry.Options{WatchBufferBytes: 1 << 20})
	scopes := []registry.Filter{{Game: "A", Env: "X"}, {Game: "B", Env: "Y"}}
	const writers, opsPerWriter = 4, 1000

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Watchers that stay to the end, started at different times.
	type result struct {
		rp  *replica
		err error
	}
	results := make(chan result, 2*len(scopes)+1)
	startWatcher := func(f registry.Filter) {
		ch, err := r.Watch(ctx, f)
		if err != nil {
			results <- result{err: err}
			return
		}
		markers := 0 // one "zz.done" per scope the filter covers ends the run
		for _, s := range scopes {
			if f.Game == "" || f == s {
				markers++
			}
		}
		go func() {
			rp := &replica{filter: f, state: map[regKey]*croupierv1.FunctionRegistration{}}
			synced := false
			for ev := range ch {
				if ev.GetType() == croupierv1.RegistrationEventType_SYNCED {
					synced = true
					continue
				}
				if !synced && ev.GetType() != croupierv1.RegistrationEventType_ADDED {
					results <- result{err: fmt.Errorf("%v before SYNCED", ev.GetType())}
					return
				}
				if err := rp.apply(ev); err != nil {
					results <- result{err: err}
					return
				}
				if ev.GetRegistration().GetFunctionId() == "zz.done" {
					if markers--; markers == 0 {
						results <- result{rp: rp}
						return
					}
				}
			}
			results <- result{err: fmt.Errorf("watch %+v closed early (ctx err %v)", f, ctx.Err())}
		}()
	}
	for _, f := range scopes {
		startWatcher(f)
	}

	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			for op := range opsPerWriter {
				s := scopes[rng.IntN(len(scopes))]
				id := fmt.Sprintf("agent-%d", rng.IntN(6))
				switch rng.IntN(6) {
				case 0:
					r.Remove(id)
				case 1:
					_ = r.Heartbeat(id, time.Time{})
				case 2:
					_ = r.PutDescriptor(s.Game, s.Env, desc(fmt.Sprintf("fn%d", rng.IntN(4)), fmt.Sprint(op)))
				case 3:
					r.SetEnabled(s.Game, s.Env, fmt.Sprintf("fn%d", rng.IntN(4)), rng.IntN(2) == 0)
				default:
					var instances []registry.Instance
					for i := range rng.IntN(3) {
						instances = append(instances, inst(fmt.Sprint("i", i), fmt.Sprintf("fn%d", rng.IntN(4)), fmt.Sprintf("fn%d", rng.IntN(4))))
					}
					a := withDescs(agent(id, s.Game, s.Env, instances...), desc(fmt.Sprintf("fn%d", rng.IntN(4)), fmt.Sprint(rng.IntN(3))))
					if err := r.Upsert(a); err != nil {
						t.Error(err)
						return
					}
				}
				if op == opsPerWriter/2 && w == 0 {
					// Late joiners: their snapshot must splice into the stream.
					startWatcher(scopes[0])
					startWatcher(registry.Filter{})
				}
				if op%50 == 0 {
					// Short-lived watcher, cancelled mid-stream.
					wctx, wcancel := context.WithCancel(ctx)
					if _, err := r.Watch(wctx, registry.Filter{Game: s.Game}); err != nil {
						t.Error(err)
					}
					wcancel()
				}
			}
		})
	}
	wg.Wait()
	for _, s := range scopes {
		marker(t, r, s.Game, s.Env, "zz.done")
	}

	deadline := time.After(10 * time.Second)
	const watchers = 4 // two from the start, two late joiners
	for range watchers {
		select {
		case res := <-results:
			if res.err != nil {
				t.Fatal(res.err)
			}
			checkReplica(t, r, res.rp)
		case <-deadline:
			t.Fatal("watchers did not finish")
		}
	}
}

// checkReplica fails unless rp holds exactly the registry's registrations
// matching its filter (heartbeat times aside).
func checkReplica(t *testing.T, r *registry.Registry, rp *replica) {
	t.Helper()
	want := map[regKey]*croupierv1.FunctionRegistration{}
	for _, reg := range r.Registrations(rp.filter) {
		want[regKey{reg.GetGameId(), reg.GetEnv(), reg.GetFunctionId()}] = reg
	}
	if len(want) != len(rp.state) {
		t.Fatalf("watcher %+v rebuilt %d registrations, registry has %d", rp.filter, len(rp.state), len(want))
	}
	for k, w := range want {
		got, ok := rp.state[k]
		if !ok || !proto.Equal(strip(got), strip(w)) {
			t.Fatalf("watcher %+v: %v\n got  %v\n want %v", rp.filter, k, got, w)
		}
	}
}
