package tunnel

import (
	"bytes"
	"context"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestHandlerWorkers: a Client runs handlers on workers that stay — at most
// 64 of them, and not more than MaxInFlight — take the next requests, and
// end when Run returns.
func TestHandlerWorkers(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			const maxInFlight = maxHandlerWorkers + 16
			e := newEnv(t, tr, ServerOptions{})
			var (
				mu   sync.Mutex
				gate chan struct{}   // handlers wait for it to close
				ran  map[uint64]bool // the goroutines that ran handlers
			)
			reg := NewHandlerRegistry()
			mustRegister(t, reg, func(_ context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
				mu.Lock()
				ran[goroutineID()] = true
				g := gate
				mu.Unlock()
				<-g
				return req, nil
			})
			c := e.cs.newClient(ClientOptions{Name: "w", Handlers: reg, MaxInFlight: maxInFlight, Logger: testLogger(t),
				MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- c.Run(ctx) }()
			waitFor(t, 5*time.Second, func() bool { return e.srv.Connected("w") }, "client to connect")

			// burst makes n calls that all wait in their handlers at once,
			// then lets them answer; it returns the goroutines that ran them.
			burst := func(n int) map[uint64]bool {
				t.Helper()
				mu.Lock()
				gate, ran = make(chan struct{}), make(map[uint64]bool)
				mu.Unlock()
				errs := make(chan error, n)
				for i := range n {
					go func() {
						_, err := e.srv.Call(ctx, "w", wrapperspb.String(strconv.Itoa(i)))
						errs <- err
					}()
				}
				waitFor(t, 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(ran) == n },
					"%d handlers to run at once on %d goroutines", n, n)
				mu.Lock()
				close(gate)
				gs := ran
				mu.Unlock()
				for range n {
					if err := <-errs; err != nil {
						t.Fatal(err)
					}
				}
				return gs
			}

			first := burst(maxInFlight)
			waitFor(t, 5*time.Second, func() bool { return c.workers.Load() == maxHandlerWorkers && c.idle.Load() == maxHandlerWorkers },
				"%d idle workers (have %d, %d idle)", maxHandlerWorkers, c.workers.Load(), c.idle.Load())

			second := burst(maxHandlerWorkers)
			for g := range second {
				if !first[g] {
					t.Fatalf("a handler of the second burst ran on a new goroutine with %d workers idle", maxHandlerWorkers)
				}
			}
			waitFor(t, 5*time.Second, func() bool { return c.idle.Load() == maxHandlerWorkers },
				"the workers to be idle again (%d idle)", c.idle.Load())
			if n := c.workers.Load(); n != maxHandlerWorkers {
				t.Fatalf("%d workers after the second burst, want %d", n, maxHandlerWorkers)
			}

			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return")
			}
			if w, i := c.workers.Load(), c.idle.Load(); w != 0 || i != 0 {
				t.Fatalf("after Run: %d workers, %d idle; want none", w, i)
			}
		})
	}
}

// goroutineID is the calling goroutine's id, from its stack's header.
func goroutineID() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	id, _ := strconv.ParseUint(string(b[:bytes.IndexByte(b, ' ')]), 10, 64)
	return id
}
