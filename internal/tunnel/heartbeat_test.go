package tunnel

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestPingHeartbeat checks, over every transport, that a client's ping
// reaches ServerOptions.OnPing and that only a pong the server counted as a
// heartbeat reaches ClientOptions.OnHeartbeat, with the server's version.
func TestPingHeartbeat(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			var pings atomic.Int32
			e := newEnv(t, tr, ServerOptions{
				// The server's own pings would be answered with pongs the
				// server does not count; keep them out of the test.
				PingInterval: time.Hour, PingTimeout: 2 * time.Hour,
				OnPing: func(name string) (int64, bool) {
					if name != "a" {
						t.Errorf("OnPing(%q), want a", name)
					}
					// The first ping is not counted (say, the agent is not
					// registered yet); later ones are, at version 7.
					return 7, pings.Add(1) > 1
				},
			})
			var mu sync.Mutex
			var beats []int64
			c := e.cs.newClient(ClientOptions{
				Name: "a", Handlers: echoRegistry(t, "a"), Logger: testLogger(t),
				PingInterval: time.Hour, PingTimeout: 2 * time.Hour,
				OnHeartbeat: func(v int64) {
					mu.Lock()
					beats = append(beats, v)
					mu.Unlock()
				},
			})
			if c.Ping() {
				t.Fatal("Ping before Run queued a ping")
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- c.Run(ctx) }()
			t.Cleanup(func() {
				cancel()
				within(t, 10*time.Second, "Run to return", func() { <-done })
			})
			waitFor(t, 5*time.Second, func() bool { return e.srv.Connected("a") }, "client to connect")
			// The welcome reached the client once a call round-trips, so
			// the session is the current one.
			if _, err := e.srv.Call(context.Background(), "a", wrapperspb.String("x")); err != nil {
				t.Fatal(err)
			}

			for range 2 {
				if !c.Ping() {
					t.Fatal("Ping on a live connection queued nothing")
				}
			}
			// Pongs arrive in order: when the second one's callback runs,
			// the first (not counted) was already read and ignored.
			waitFor(t, 5*time.Second, func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(beats) > 0
			}, "a counted heartbeat")
			mu.Lock()
			got := append([]int64(nil), beats...)
			mu.Unlock()
			if len(got) != 1 || got[0] != 7 || pings.Load() != 2 {
				t.Fatalf("heartbeats %v after %d pings; want [7] after 2", got, pings.Load())
			}
		})
	}
}

// TestKeepalivePingIsNoHeartbeat: the client's periodic keepalive pings do
// not reach OnPing (a client whose control loop stopped calling Ping must
// stop heartbeating); only Client.Ping's do.
func TestKeepalivePingIsNoHeartbeat(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			var pings atomic.Int32
			e := newEnv(t, tr, ServerOptions{
				PingInterval: time.Hour, PingTimeout: 2 * time.Hour,
				OnPing: func(string) (int64, bool) { return 3, pings.Add(1) > 0 },
			})
			beats := make(chan int64, 1)
			c := e.cs.newClient(ClientOptions{
				Name: "a", Handlers: echoRegistry(t, "a"), Logger: testLogger(t),
				PingInterval: 10 * time.Millisecond, PingTimeout: time.Hour,
				OnHeartbeat: func(v int64) { beats <- v },
			})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- c.Run(ctx) }()
			t.Cleanup(func() {
				cancel()
				within(t, 10*time.Second, "Run to return", func() { <-done })
			})
			// Three keepalive pings sent on the current session.
			waitFor(t, 5*time.Second, func() bool {
				s := c.cur.Load()
				return s != nil && s.nonce.Load() >= 3
			}, "three keepalive pings")
			if !c.Ping() {
				t.Fatal("Ping on a live connection queued nothing")
			}
			// Pongs come in order: by the heartbeat's pong, the server has
			// read every earlier keepalive ping.
			select {
			case v := <-beats:
				if v != 3 {
					t.Fatalf("heartbeat version %d, want 3", v)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no heartbeat pong")
			}
			if n := pings.Load(); n != 1 {
				t.Fatalf("OnPing saw %d pings after 3+ keepalive pings and one Client.Ping; want 1", n)
			}
		})
	}
}
