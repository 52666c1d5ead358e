package live_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/cluster"
	"github.com/croupier/croupier/internal/live"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// watched collects one watcher's changes of one lease, after the watch
// has seen a change of the probe lease (and so is running).
type watched struct {
	path, probe string

	mu      sync.Mutex
	running bool
	changes []live.LeaseChange
}

func (w *watched) add(c live.LeaseChange) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch c.Path {
	case w.probe:
		w.running = true
	case w.path:
		w.changes = append(w.changes, c)
	}
}

func (w *watched) isRunning() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.running
}

func (w *watched) of(kind live.LeaseChangeKind) []live.LeaseChange {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []live.LeaseChange
	for _, c := range w.changes {
		if c.Kind == kind {
			out = append(out, c)
		}
	}
	return out
}

// TestKVLeases: two nodes' leases over one NATS. A held lease refuses
// another holder; release and expiry both let a new holder in with a
// higher epoch; an expired lease cannot be renewed; both watchers see
// every change, and exactly one of them is told to announce an expiry.
func TestKVLeases(t *testing.T) {
	ctx := context.Background()
	bus, err := cluster.Start(ctx, cluster.Config{NodeID: "bus", Listen: "127.0.0.1:0", Token: busToken, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bus.Close)
	open := func() *live.KVLeases {
		nc, err := nats.Connect(bus.ClientURL(), nats.Token(busToken))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, _ := jetstream.New(nc)
		// 3 s: every step that needs a lease still held runs within
		// one TTL of its last renewal, with room for a loaded machine.
		l, err := live.NewKVLeases(ctx, js, live.KVLeasesConfig{TTL: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	const path, probe = "room_1-AbC/main", "room_probe/main"
	la, lb := open(), open()
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	seen := []*watched{{path: path, probe: probe}, {path: path, probe: probe}}
	for i, l := range []*live.KVLeases{la, lb} {
		wg.Go(func() { l.Watch(wctx, seen[i].add) })
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	// A watch starts on its own goroutine: a change made before it runs
	// is not reported (a lease already ended by then is not among the
	// current values). Changes after a probe lease both watchers saw
	// are.
	ep, err := la.Acquire(ctx, probe, live.Holder{NodeID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "both watchers to run", func() bool { return seen[0].isRunning() && seen[1].isRunning() })
	if err := la.Release(ctx, probe, ep); err != nil {
		t.Fatal(err)
	}

	a, b := live.Holder{NodeID: "a", RelayAddr: "127.0.0.1:1"}, live.Holder{NodeID: "b"}
	e1, err := la.Acquire(ctx, path, a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lb.Acquire(ctx, path, b); !errors.Is(err, live.ErrLeaseHeld) {
		t.Fatalf("second holder: %v, want ErrLeaseHeld", err)
	}
	if h, e, ok, err := lb.Lookup(ctx, path); err != nil || !ok || h != a || e != e1 {
		t.Fatalf("lookup: %v %d %v %v; want %v %d", h, e, ok, err, a, e1)
	}
	if err := la.Renew(ctx, path, e1); err != nil {
		t.Fatal(err)
	}
	if h, e, ok, _ := lb.Lookup(ctx, path); !ok || h != a || e != e1 {
		t.Fatalf("lookup after renewal: %v %d %v; want the same lease", h, e, ok)
	}
	if err := la.Renew(ctx, path, e1+1); !errors.Is(err, live.ErrLeaseLost) {
		t.Fatalf("renew of another epoch: %v, want ErrLeaseLost", err)
	}
	if err := la.Release(ctx, path, e1); err != nil {
		t.Fatal(err)
	}
	e2, err := lb.Acquire(ctx, path, b)
	if err != nil || e2 <= e1 {
		t.Fatalf("after release: epoch %d, %v; want above %d", e2, err, e1)
	}

	// b stops renewing: after the TTL the lease is gone, b cannot renew
	// it, a takes it with a higher epoch.
	waitFor(t, 20*time.Second, "the lease to expire", func() bool {
		_, _, ok, _ := la.Lookup(ctx, path)
		return !ok
	})
	if err := lb.Renew(ctx, path, e2); !errors.Is(err, live.ErrLeaseLost) {
		t.Fatalf("renew after expiry: %v, want ErrLeaseLost", err)
	}
	waitFor(t, 10*time.Second, "both watchers to see the expiry", func() bool {
		return len(seen[0].of(live.LeaseExpired)) == 1 && len(seen[1].of(live.LeaseExpired)) == 1
	})
	restarted := open() // node a's next process, opened ahead: it takes a while
	e3, err := la.Acquire(ctx, path, a)
	if err != nil || e3 <= e2 {
		t.Fatalf("after expiry: epoch %d, %v; want above %d", e3, err, e2)
	}

	waitFor(t, 10*time.Second, "both watchers to see the third lease", func() bool {
		_ = la.Renew(ctx, path, e3) // held for the takeover below, however long this takes
		return len(seen[0].of(live.LeaseTaken)) == 3 && len(seen[1].of(live.LeaseTaken)) == 3
	})
	announced := 0
	for i, s := range seen {
		taken, released, expired := s.of(live.LeaseTaken), s.of(live.LeaseReleased), s.of(live.LeaseExpired)
		if taken[0].Epoch != e1 || taken[1].Epoch != e2 || taken[2].Epoch != e3 || taken[2].Holder != a {
			t.Errorf("watcher %d: taken %+v; want epochs %d %d %d", i, taken, e1, e2, e3)
		}
		if len(released) != 1 || released[0].Epoch != e1 {
			t.Errorf("watcher %d: released %+v; want epoch %d", i, released, e1)
		}
		if expired[0].Epoch != e2 || expired[0].Holder != b {
			t.Errorf("watcher %d: expired %+v; want b's epoch %d", i, expired[0], e2)
		}
		if expired[0].Announce {
			announced++
		}
	}
	if announced != 1 {
		t.Errorf("%d watchers were told to announce the expiry; want 1", announced)
	}

	// Node a restarts within the TTL: its new process takes its old
	// process's lease over with a higher epoch; b still may not.
	if err := la.Renew(ctx, path, e3); err != nil {
		t.Fatal(err)
	}
	if _, err := restarted.Acquire(ctx, path, b); !errors.Is(err, live.ErrLeaseHeld) {
		t.Fatalf("b over a's lease: %v, want ErrLeaseHeld", err)
	}
	e4, err := restarted.Acquire(ctx, path, a)
	if err != nil || e4 <= e3 {
		t.Fatalf("takeover: epoch %d, %v; want above %d", e4, err, e3)
	}
	if err := la.Renew(ctx, path, e3); !errors.Is(err, live.ErrLeaseLost) {
		t.Fatalf("the old process's renewal: %v, want ErrLeaseLost", err)
	}
}
