package control

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/wrapperspb"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/tunnel"
)

// gatedStore is an AssignmentStore whose List, once closed, waits for the
// gate to open (or its context to end) and counts its calls.
type gatedStore struct {
	AssignmentStore
	closed atomic.Bool
	gate   chan struct{}
	lists  atomic.Int32
}

func (g *gatedStore) List(ctx context.Context, game, env string) ([]*croupierv1.FunctionAssignment, int64, error) {
	g.lists.Add(1)
	if g.closed.Load() {
		select {
		case <-g.gate:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
	}
	return g.AssignmentStore.List(ctx, game, env)
}

// newGatedService is the harness's service over a gated assignment store.
func newGatedService(t *testing.T, h *harness) (*Service, *Assignments, *gatedStore) {
	t.Helper()
	st := &gatedStore{AssignmentStore: h.st.Assignments(), gate: make(chan struct{})}
	as := NewAssignments(st, time.Minute)
	as.now = h.clock.Now
	t.Cleanup(as.Close)
	svc := New(Config{HeartbeatInterval: 10 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
		h.reg, as, NewScopes(h.st.Scopes()), h.tunnel)
	if _, err := svc.RegisterAgent(context.Background(), registration()); err != nil {
		t.Fatal(err)
	}
	// As the agent does after registering: this reads the scope once.
	if _, err := svc.GetAssignments(context.Background(), &croupierv1.GetAssignmentsRequest{AgentId: "a"}); err != nil {
		t.Fatal(err)
	}
	return svc, as, st
}

// TestTunnelHeartbeatNeverWaitsForTheStore: with the store blocked, a
// tunnel heartbeat still answers at once from the cache (the stale version),
// starts one refresh however many pings come, and answers the new version
// once the refresh lands.
func TestTunnelHeartbeatNeverWaitsForTheStore(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	svc, _, st := newGatedService(t, h)
	// Another node changes an assignment; the cache expires; the store hangs.
	if _, err := h.st.Assignments().Set(context.Background(), game, env, "player.ban", false, nil); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(2 * time.Minute)
	st.closed.Store(true)
	before := st.lists.Load()

	for range 10 {
		beat := make(chan int64, 1)
		go func() {
			v, ok := svc.TunnelHeartbeat("a")
			if !ok {
				v = -1
			}
			beat <- v
		}()
		select {
		case v := <-beat:
			if v != 0 {
				t.Fatalf("TunnelHeartbeat with the store blocked = %d; want the cached 0", v)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("TunnelHeartbeat waited for a blocked store")
		}
	}
	waitUntil(t, func() bool { return st.lists.Load() == before+1 }, "one background refresh to reach the store")
	if n := st.lists.Load() - before; n != 1 {
		t.Fatalf("10 heartbeats of a stale scope made %d store reads; want 1", n)
	}
	close(st.gate)
	waitUntil(t, func() bool { v, ok := svc.TunnelHeartbeat("a"); return ok && v == 1 }, "the refreshed version")
}

// TestTunnelHeartbeatDoesNotDelayCalls: the heartbeat runs on the tunnel's
// reader, so a store that hangs must not hold up a call's response that
// arrives on the same tunnel right after the ping.
func TestTunnelHeartbeatDoesNotDelayCalls(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	svc, _, st := newGatedService(t, h)
	quiet := slog.New(slog.DiscardHandler)

	srv := tunnel.NewServer(tunnel.ServerOptions{Logger: quiet, OnPing: svc.TunnelHeartbeat,
		PingInterval: time.Hour, PingTimeout: 2 * time.Hour})
	t.Cleanup(srv.Close)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	srv.RegisterGRPC(gs)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)

	handlers := tunnel.NewHandlerRegistry()
	if err := tunnel.Register(handlers, func(_ context.Context, s *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return s, nil
	}); err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	beats := make(chan int64, 16)
	client := tunnel.NewGRPCClient(cc, tunnel.ClientOptions{
		Name: "a", Handlers: handlers, Logger: quiet, PingInterval: time.Hour, PingTimeout: 2 * time.Hour,
		OnHeartbeat: func(v int64) { beats <- v },
	})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- client.Run(ctx) }()
	t.Cleanup(func() { stop(); <-done })
	call := func() error {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := tunnel.Call[*wrapperspb.StringValue](cctx, srv, "a", wrapperspb.String("x"))
		return err
	}
	waitUntil(t, func() bool { return srv.Connected("a") }, "the agent's tunnel")
	if err := call(); err != nil { // the session is the current one
		t.Fatal(err)
	}

	h.clock.Advance(2 * time.Minute) // the cached scope is stale
	st.closed.Store(true)            // and the store hangs until the test ends
	if !client.Ping() {
		t.Fatal("Ping queued nothing")
	}
	// The ping went out before the call's response: the reader handles it
	// first. Had it waited for the store, the call would time out.
	if err := call(); err != nil {
		t.Fatalf("call behind a heartbeat with the store blocked: %v", err)
	}
	select {
	case v := <-beats:
		if v != 0 {
			t.Fatalf("heartbeat version %d; want the cached 0", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no counted heartbeat")
	}
	close(st.gate)
}

// waitUntil polls cond every few milliseconds for up to 10 s.
func waitUntil(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// failingStore is an AssignmentStore whose List fails once failing is set.
type failingStore struct {
	AssignmentStore
	failing atomic.Bool
	lists   atomic.Int32
}

func (f *failingStore) List(ctx context.Context, game, env string) ([]*croupierv1.FunctionAssignment, int64, error) {
	f.lists.Add(1)
	if f.failing.Load() {
		return nil, 0, context.DeadlineExceeded
	}
	return f.AssignmentStore.List(ctx, game, env)
}

// TestCachedVersionBacksOffAfterAFailure: a failed background refresh is
// not retried on every ping, only after refreshRetry.
func TestCachedVersionBacksOffAfterAFailure(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	st := &failingStore{AssignmentStore: h.st.Assignments()}
	as := NewAssignments(st, time.Minute)
	as.now = h.clock.Now
	t.Cleanup(as.Close)
	if _, err := as.Version(context.Background(), game, env); err != nil {
		t.Fatal(err)
	}
	st.failing.Store(true)
	h.clock.Advance(2 * time.Minute)
	failed := func() bool {
		as.mu.Lock()
		defer as.mu.Unlock()
		return !as.refresh[game+"/"+env].IsZero()
	}
	if v, ok := as.CachedVersion(game, env); !ok || v != 0 {
		t.Fatalf("CachedVersion = %d, %v; want the cached 0", v, ok)
	}
	waitUntil(t, failed, "the refresh to fail")
	n := st.lists.Load()
	for range 10 {
		as.CachedVersion(game, env)
	}
	if got := st.lists.Load(); got != n {
		t.Fatalf("%d store reads within refreshRetry of a failure; want none", got-n)
	}
	h.clock.Advance(refreshRetry)
	st.failing.Store(false)
	waitUntil(t, func() bool { _, ok := as.CachedVersion(game, env); return ok && !failed() && st.lists.Load() == n+1 },
		"one retry after refreshRetry")
}
