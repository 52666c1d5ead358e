package tunnel

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	tunnelv1 "github.com/croupier/croupier/api/croupier/tunnel/v1"
)

// TestConformance runs every behaviour test against every transport.
func TestConformance(t *testing.T) {
	tests := []struct {
		name string
		fn   func(t *testing.T, tr transport)
	}{
		{"RoundTrip", testRoundTrip},
		{"HandlerErrorsArriveAsStatus", testHandlerErrors},
		{"DeadlineTravelsWithRequest", testDeadlineTravels},
		{"CancelReachesHandler", testCancelReachesHandler},
		{"DeadlineExceededEndsHandler", testDeadlineExceeded},
		{"StuckClientDoesNotDelayOthers", testStuckClientDoesNotDelayOthers},
		{"LoneLargeCallToStuckClientEndsAtDeadline", testLoneLargeCallToStuckClient},
		{"ReconnectReplacesStaleConnection", testReplaceStale},
		{"CallAllWithHungClient", testCallAllHung},
		{"FlowControlHonoursMaxInFlight", testFlowControl},
		{"KeepaliveDropsHalfOpenClient", testKeepaliveDropsHalfOpen},
		{"DisconnectAndReconnect", testDisconnectAndReconnect},
		{"AuthorizeRejects", testAuthorizeRejects},
		{"CloseFailsCalls", testCloseFailsCalls},
		{"TenClientsHundredConcurrentCalls", testConcurrentLoad},
		{"DisconnectNeverDeadlocks", testDisconnectNeverDeadlocks},
		{"OversizedRequestRefused", testOversizedRequest},
	}
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) { tc.fn(t, tr) })
			}
		})
	}
}

// echoRegistry answers StringValue with "<name>:<value>".
func echoRegistry(t *testing.T, name string) *HandlerRegistry {
	t.Helper()
	reg := NewHandlerRegistry()
	mustRegister(t, reg, func(_ context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return wrapperspb.String(name + ":" + req.GetValue()), nil
	})
	return reg
}

func mustRegister[Req, Resp proto.Message](t *testing.T, reg *HandlerRegistry, h func(context.Context, Req) (Resp, error)) {
	t.Helper()
	if err := Register(reg, h); err != nil {
		t.Fatal(err)
	}
}

func wantCode(t *testing.T, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("error %v: code %s, want %s", err, got, want)
	}
}

func testRoundTrip(t *testing.T, tr transport) {
	e := newEnv(t, tr, ServerOptions{})
	e.startClient(ClientOptions{Name: "a", Handlers: echoRegistry(t, "a")})
	e.startClient(ClientOptions{Name: "b", Handlers: echoRegistry(t, "b")})
	ctx := context.Background()

	if got := e.srv.Clients(); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Fatalf("Clients() = %v, want [a b]", got)
	}
	resp, err := Call[*wrapperspb.StringValue](ctx, e.srv, "a", wrapperspb.String("hi"))
	if err != nil || resp.GetValue() != "a:hi" {
		t.Fatalf("typed Call = %v, %v; want a:hi", resp, err)
	}
	m, err := e.srv.Call(ctx, "b", wrapperspb.String("yo"))
	if err != nil {
		t.Fatal(err)
	}
	if sv, ok := m.(*wrapperspb.StringValue); !ok || sv.GetValue() != "b:yo" {
		t.Fatalf("untyped Call = %v; want b:yo", m)
	}
	typed := CallAll[*wrapperspb.StringValue](ctx, e.srv, wrapperspb.String("all"))
	if len(typed) != 2 || typed[0].Client != "a" || typed[0].Resp.GetValue() != "a:all" || typed[1].Resp.GetValue() != "b:all" {
		t.Fatalf("typed CallAll = %+v", typed)
	}
	untyped := e.srv.CallAll(ctx, wrapperspb.String("u"))
	if len(untyped) != 2 || untyped[1].Err != nil || untyped[1].Resp.(*wrapperspb.StringValue).GetValue() != "b:u" {
		t.Fatalf("CallAll = %+v", untyped)
	}
	// A wrong expected type is a clear INTERNAL error, not a panic.
	_, err = Call[*wrapperspb.Int64Value](ctx, e.srv, "a", wrapperspb.String("x"))
	wantCode(t, err, codes.Internal)
}

func testHandlerErrors(t *testing.T, tr transport) {
	e := newEnv(t, tr, ServerOptions{})
	reg := NewHandlerRegistry()
	mustRegister(t, reg, func(_ context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		switch req.GetValue() {
		case "status":
			return nil, status.Error(codes.NotFound, "no such player 42")
		case "wrapped":
			return nil, fmt.Errorf("loading: %w", status.Error(codes.FailedPrecondition, "not ready"))
		case "plain":
			return nil, errors.New("disk full")
		case "panic":
			panic("boom")
		}
		return req, nil
	})
	e.startClient(ClientOptions{Name: "a", Handlers: reg})
	ctx := context.Background()

	cases := []struct {
		in      proto.Message
		code    codes.Code
		message string
	}{
		{wrapperspb.String("status"), codes.NotFound, "no such player 42"},
		{wrapperspb.String("wrapped"), codes.FailedPrecondition, "not ready"},
		{wrapperspb.String("plain"), codes.Unknown, "disk full"},
		{wrapperspb.String("panic"), codes.Internal, "panicked: boom"},
		{wrapperspb.Int64(1), codes.Unimplemented, "google.protobuf.Int64Value"},
	}
	for _, c := range cases {
		_, err := e.srv.Call(ctx, "a", c.in)
		st := status.Convert(err)
		if st.Code() != c.code || !strings.Contains(st.Message(), c.message) {
			t.Errorf("Call(%v) = %v; want %s containing %q", c.in, err, c.code, c.message)
		}
	}
	_, err := e.srv.Call(ctx, "nobody", wrapperspb.String("x"))
	wantCode(t, err, codes.Unavailable)
}

func testDeadlineTravels(t *testing.T, tr transport) {
	e := newEnv(t, tr, ServerOptions{})
	reg := NewHandlerRegistry()
	mustRegister(t, reg, func(ctx context.Context, _ *emptypb.Empty) (*durationpb.Duration, error) {
		dl, ok := ctx.Deadline()
		if !ok {
			return durationpb.New(-1), nil
		}
		return durationpb.New(time.Until(dl)), nil
	})
	e.startClient(ClientOptions{Name: "a", Handlers: reg})

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	left, err := Call[*durationpb.Duration](ctx, e.srv, "a", &emptypb.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	if d := left.AsDuration(); d <= 3*time.Second || d > 5*time.Second {
		t.Fatalf("handler deadline %v away; want within (3s, 5s]", d)
	}
	left, err = Call[*durationpb.Duration](context.Background(), e.srv, "a", &emptypb.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	if left.AsDuration() != -1 {
		t.Fatalf("caller without deadline: handler has deadline %v away; want none", left.AsDuration())
	}
}

// blockingRegistry's StringValue handler blocks until its ctx ends and
// records why; started counts handler entries.
type blocking struct {
	started atomic.Int32
	errs    chan error
}

func blockingRegistry(t *testing.T) (*HandlerRegistry, *blocking) {
	b := &blocking{errs: make(chan error, 100)}
	reg := NewHandlerRegistry()
	mustRegister(t, reg, func(ctx context.Context, _ *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		b.started.Add(1)
		<-ctx.Done()
		b.errs <- ctx.Err()
		return nil, ctx.Err()
	})
	return reg, b
}

func (b *blocking) waitErr(t *testing.T, want error) {
	t.Helper()
	select {
	case err := <-b.errs:
		if !errors.Is(err, want) {
			t.Fatalf("handler context ended with %v, want %v", err, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("handler context did not end")
	}
}

func testCancelReachesHandler(t *testing.T, tr transport) {
	e := newEnv(t, tr, ServerOptions{})
	reg, b := blockingRegistry(t)
	e.startClient(ClientOptions{Name: "a", Handlers: reg})

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := e.srv.Call(ctx, "a", wrapperspb.String("x"))
		errc <- err
	}()
	waitFor(t, 5*time.Second, func() bool { return b.started.Load() == 1 }, "handler to start")
	cancel()
	wantCode(t, <-errc, codes.Canceled)
	b.waitErr(t, context.Canceled)
	// The client answers the cancelled request, which frees its slot.
	waitFor(t, 5*time.Second, func() bool { return e.inFlight("a") == 0 }, "the cancelled call to be released")
}

func testDeadlineExceeded(t *testing.T, tr transport) {
	e := newEnv(t, tr, ServerOptions{})
	reg, b := blockingRegistry(t)
	e.startClient(ClientOptions{Name: "a", Handlers: reg})

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := e.srv.Call(ctx, "a", wrapperspb.String("x"))
	wantCode(t, err, codes.DeadlineExceeded)
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("call returned after %v; want about 200ms", el)
	}
	b.waitErr(t, context.DeadlineExceeded)
}

func testStuckClientDoesNotDelayOthers(t *testing.T, tr transport) {
	e := newEnv(t, tr, ServerOptions{})
	e.startClient(ClientOptions{Name: "good", Handlers: echoRegistry(t, "good")})
	e.stuck("stuck", 1000)

	// Flood the stuck client with more than any transport buffers, so its
	// writer blocks and calls wait in its queue.
	big := wrapperspb.String(strings.Repeat("x", 256<<10))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var stuckDone atomic.Int32
	const stuckCalls = 100
	for range stuckCalls {
		wg.Go(func() {
			_, err := e.srv.Call(ctx, "stuck", big)
			if status.Code(err) != codes.Canceled {
				t.Errorf("call to stuck client: %v, want CANCELED", err)
			}
			stuckDone.Add(1)
		})
	}
	defer func() {
		cancel()
		wg.Wait()
	}()
	waitFor(t, 5*time.Second, func() bool {
		c := e.srv.lookup("stuck")
		c.mu.Lock()
		calls := len(c.calls)
		c.mu.Unlock()
		c.qmu.Lock()
		defer c.qmu.Unlock()
		return calls == stuckCalls && len(c.reqs) > 0 && c.writing
	}, "every call to the stuck client to be sent or queued behind its blocked writer")

	// Generous bounds: a good client held up by the stuck one never gets an
	// answer (the stuck calls end only when this test cancels them), so a
	// long timeout still catches that, while the 100 large marshals above
	// may keep a loaded machine busy for over a second under -race.
	start := time.Now()
	for i := range 50 {
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := Call[*wrapperspb.StringValue](cctx, e.srv, "good", wrapperspb.String(fmt.Sprint(i)))
		ccancel()
		if err != nil || resp.GetValue() != fmt.Sprintf("good:%d", i) {
			t.Fatalf("call %d to the good client: %v, %v", i, resp, err)
		}
	}
	if el := time.Since(start); el > 20*time.Second {
		t.Fatalf("50 calls to the good client took %v", el)
	}
	if n := stuckDone.Load(); n != 0 {
		t.Fatalf("%d calls to the stuck client returned; want all still waiting", n)
	}
}

// testLoneLargeCallToStuckClient: a call alone on its connection may write
// its own request, but not one that a client which stopped reading cannot
// take: the caller must still leave at its deadline, not when keepalive
// ends the connection (PingTimeout, 30 s).
func testLoneLargeCallToStuckClient(t *testing.T, tr transport) {
	e := newEnv(t, tr, ServerOptions{})
	e.stuck("stuck", 10)
	big := wrapperspb.String(strings.Repeat("x", DefaultMaxFrameBytes-1<<10))
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := e.srv.Call(ctx, "stuck", big)
	wantCode(t, err, codes.DeadlineExceeded)
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("the call returned after %v, not at its deadline of 300ms", el)
	}
}

func testReplaceStale(t *testing.T, tr transport) {
	e := newEnv(t, tr, ServerOptions{})
	// The old connection is half-open: the client's process moved on.
	e.stuck("a", 10)
	errc := make(chan error, 1)
	go func() {
		_, err := e.srv.Call(context.Background(), "a", wrapperspb.String("lost"))
		errc <- err
	}()
	waitFor(t, 5*time.Second, func() bool { return e.inFlight("a") == 1 }, "the call to be in flight")

	e.runClient(ClientOptions{Name: "a", Handlers: echoRegistry(t, "new")})
	select {
	case err := <-errc:
		wantCode(t, err, codes.Unavailable)
	case <-time.After(5 * time.Second):
		t.Fatal("call on the replaced connection did not fail")
	}
	resp, err := Call[*wrapperspb.StringValue](context.Background(), e.srv, "a", wrapperspb.String("x"))
	if err != nil || resp.GetValue() != "new:x" {
		t.Fatalf("call after replacement: %v, %v; want new:x", resp, err)
	}
	// OnConnect runs after the new connection is in the table: calls can
	// be served before it has.
	waitFor(t, 5*time.Second, func() bool { return e.events.count("connect", "a") == 2 }, "the second connect event")
	if c, d := e.events.count("connect", "a"), e.events.count("disconnect", "a"); c != 2 || d != 0 {
		t.Fatalf("events: %d connects, %d disconnects; want 2 and 0 (a replacement is not a disconnect)", c, d)
	}
}

func testCallAllHung(t *testing.T, tr transport) {
	e := newEnv(t, tr, ServerOptions{})
	e.startClient(ClientOptions{Name: "a", Handlers: echoRegistry(t, "a")})
	e.startClient(ClientOptions{Name: "b", Handlers: echoRegistry(t, "b")})
	hung, _ := blockingRegistry(t)
	e.startClient(ClientOptions{Name: "c", Handlers: hung})

	// The deadline must leave the two live clients time to answer even on
	// a loaded machine under -race (300 ms did not always); the hung one
	// never answers, so CallAll returns at the deadline, not later.
	const deadline = 2 * time.Second
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	res := CallAll[*wrapperspb.StringValue](ctx, e.srv, wrapperspb.String("q"))
	if el := time.Since(start); el < deadline || el > deadline+5*time.Second {
		t.Fatalf("CallAll took %v with a %v deadline and a hung client", el, deadline)
	}
	if len(res) != 3 {
		t.Fatalf("CallAll returned %d results, want 3", len(res))
	}
	for _, r := range res[:2] {
		if r.Err != nil || r.Resp.GetValue() != r.Client+":q" {
			t.Errorf("result %s: %v, %v", r.Client, r.Resp, r.Err)
		}
	}
	if res[2].Client != "c" || status.Code(res[2].Err) != codes.DeadlineExceeded {
		t.Errorf("hung client result: %s %v, want c DEADLINE_EXCEEDED", res[2].Client, res[2].Err)
	}
}

func testFlowControl(t *testing.T, tr transport) {
	e := newEnv(t, tr, ServerOptions{})
	release := make(chan struct{})
	var running, peak, entered atomic.Int32
	reg := NewHandlerRegistry()
	mustRegister(t, reg, func(ctx context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		entered.Add(1)
		n := running.Add(1)
		defer running.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return req, nil
	})
	e.startClient(ClientOptions{Name: "a", Handlers: reg, MaxInFlight: 2})

	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := e.srv.Call(ctx, "a", wrapperspb.String(fmt.Sprint(i))); err != nil {
				t.Errorf("call %d: %v", i, err)
			}
		})
	}
	waitFor(t, 5*time.Second, func() bool { return running.Load() == 2 }, "two handlers to run")

	// An extra call waits for a slot and honours its deadline while waiting.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	_, err := e.srv.Call(ctx, "a", wrapperspb.String("extra"))
	cancel()
	wantCode(t, err, codes.DeadlineExceeded)
	if n := entered.Load(); n != 2 {
		t.Fatalf("%d handlers entered while 2 were blocked; want 2", n)
	}

	close(release)
	wg.Wait()
	if p := peak.Load(); p != 2 {
		t.Fatalf("peak concurrent handlers %d, want 2", p)
	}
	if n := entered.Load(); n != 6 {
		t.Fatalf("%d handlers ran, want 6 (the timed-out extra call must never run)", n)
	}
}

func testKeepaliveDropsHalfOpen(t *testing.T, tr transport) {
	const pingTimeout = 600 * time.Millisecond
	e := newEnv(t, tr, ServerOptions{PingInterval: 100 * time.Millisecond, PingTimeout: pingTimeout})
	start := time.Now()
	e.stuck("a", 4)

	// Bounded, so that a server without keepalive fails here rather than
	// at the test binary's timeout; the bound is generous, for a loaded
	// machine under -race.
	ctx, cancel := context.WithTimeout(context.Background(), pingTimeout+5*time.Second)
	defer cancel()
	_, err := e.srv.Call(ctx, "a", wrapperspb.String("x"))
	wantCode(t, err, codes.Unavailable)
	// The stuck client's last frame (hello) was sent after start.
	t.Logf("half-open client dropped after %v; PingTimeout is %v", time.Since(start), pingTimeout)
	// The pending calls fail as the connection ends, and the client leaves
	// the table just after: poll rather than race that.
	waitFor(t, 5*time.Second, func() bool { return !e.srv.Connected("a") }, "the half-open client to leave the table")
	waitFor(t, time.Second, func() bool { return e.events.count("disconnect", "a") == 1 }, "OnDisconnect")
	if ev := e.events.list(); !strings.Contains(status.Convert(ev[len(ev)-1].err).Message(), "keepalive") {
		t.Fatalf("disconnect reason %v; want a keepalive timeout", ev[len(ev)-1].err)
	}
}

func testDisconnectAndReconnect(t *testing.T, tr transport) {
	e := newEnv(t, tr, ServerOptions{})
	reg, b := blockingRegistry(t)
	var connects atomic.Int32
	connCtxs := make(chan context.Context, 4)
	e.startClient(ClientOptions{Name: "a", Handlers: reg, OnConnected: func(ctx context.Context) {
		connects.Add(1)
		connCtxs <- ctx
	}})
	firstCtx := <-connCtxs

	errc := make(chan error, 1)
	go func() {
		_, err := e.srv.Call(context.Background(), "a", wrapperspb.String("x"))
		errc <- err
	}()
	waitFor(t, 5*time.Second, func() bool { return b.started.Load() == 1 }, "handler to start")

	revoked := status.Error(codes.PermissionDenied, "credentials revoked")
	e.srv.Disconnect("a", revoked)
	wantCode(t, <-errc, codes.Unavailable)
	b.waitErr(t, context.Canceled) // the client's handlers end with the connection
	select {
	case <-firstCtx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("OnConnected context did not end with its connection")
	}
	waitFor(t, 5*time.Second, func() bool { return e.events.count("disconnect", "a") == 1 }, "OnDisconnect")
	if ev := e.events.list(); status.Code(ev[1].err) != codes.PermissionDenied {
		t.Fatalf("OnDisconnect reason %v, want the PERMISSION_DENIED given to Disconnect", ev[1].err)
	}
	waitFor(t, 5*time.Second, func() bool { return connects.Load() == 2 && e.srv.Connected("a") }, "the client to reconnect")
}

func testAuthorizeRejects(t *testing.T, tr transport) {
	var gotCtx atomic.Bool
	e := newEnv(t, tr, ServerOptions{Authorize: func(ctx context.Context, name string) error {
		gotCtx.Store(ctx != nil)
		if name == "mallory" {
			return status.Error(codes.Unauthenticated, "unknown agent certificate")
		}
		if name == "eve" {
			return errors.New("not on the allow list")
		}
		return nil
	}})
	e.startClient(ClientOptions{Name: "alice", Handlers: echoRegistry(t, "alice")})
	if !gotCtx.Load() {
		t.Fatal("Authorize got a nil context")
	}
	for name, want := range map[string]codes.Code{"mallory": codes.Unauthenticated, "eve": codes.PermissionDenied} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		link, err := e.cs.dial(ctx, &tunnelv1.Hello{Name: name, MaxInFlight: 1})
		if err == nil {
			_, err = link.Recv()
			link.Close()
		}
		cancel()
		wantCode(t, err, want)
		if e.srv.Connected(name) {
			t.Fatalf("%s is connected despite being refused", name)
		}
	}
}

func testCloseFailsCalls(t *testing.T, tr transport) {
	e := newEnv(t, tr, ServerOptions{})
	reg, b := blockingRegistry(t)
	e.startClient(ClientOptions{Name: "a", Handlers: reg})
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			_, err := e.srv.Call(context.Background(), "a", wrapperspb.String("x"))
			if status.Code(err) != codes.Unavailable {
				t.Errorf("in-flight call after Close: %v, want UNAVAILABLE", err)
			}
		})
	}
	waitFor(t, 5*time.Second, func() bool { return b.started.Load() == 5 }, "handlers to start")
	within(t, 5*time.Second, "Close", e.srv.Close)
	within(t, 5*time.Second, "failing in-flight calls", wg.Wait)
	_, err := e.srv.Call(context.Background(), "a", wrapperspb.String("x"))
	wantCode(t, err, codes.Unavailable)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	link, err := e.cs.dial(ctx, &tunnelv1.Hello{Name: "late", MaxInFlight: 1})
	if err == nil {
		_, err = link.Recv()
		link.Close()
	}
	wantCode(t, err, codes.Unavailable)
}

func testConcurrentLoad(t *testing.T, tr transport) {
	e := newEnv(t, tr, ServerOptions{})
	const clients, calls = 10, 100
	for i := range clients {
		name := fmt.Sprintf("c%d", i)
		e.startClient(ClientOptions{Name: name, Handlers: echoRegistry(t, name), Logger: discardLogger()})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range clients {
		name := fmt.Sprintf("c%d", i)
		for j := range calls {
			wg.Go(func() {
				in := fmt.Sprint(j)
				resp, err := Call[*wrapperspb.StringValue](ctx, e.srv, name, wrapperspb.String(in))
				if err != nil || resp.GetValue() != name+":"+in {
					if failed.Add(1) <= 5 {
						t.Errorf("%s call %d: %v, %v", name, j, resp, err)
					}
				}
			})
		}
	}
	wg.Wait()
	for i := range clients {
		if n := e.inFlight(fmt.Sprintf("c%d", i)); n != 0 {
			t.Errorf("c%d: %d calls still tracked after all returned", i, n)
		}
	}
}

func testDisconnectNeverDeadlocks(t *testing.T, tr transport) {
	var srv atomic.Pointer[Server]
	e := newEnv(t, tr, ServerOptions{OnDisconnect: func(name string, _ error) {
		// Callbacks may call back into the server.
		s := srv.Load()
		s.Disconnect(name, nil)
		_ = s.Clients()
		_ = s.Connected(name)
	}})
	srv.Store(e.srv)
	reg := NewHandlerRegistry()
	mustRegister(t, reg, func(ctx context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		select {
		case <-time.After(time.Millisecond):
		case <-ctx.Done():
		}
		return req, nil
	})
	names := []string{"a", "b", "c", "d"}
	for _, n := range names {
		e.startClient(ClientOptions{Name: n, Handlers: reg, MaxInFlight: 4, Logger: discardLogger()})
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := 0; ctx.Err() == nil && j < 10000; j++ {
				cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
				_, err := e.srv.Call(cctx, names[(i+j)%len(names)], wrapperspb.String("x"))
				ccancel()
				switch status.Code(err) {
				case codes.OK, codes.Unavailable, codes.Canceled, codes.DeadlineExceeded:
				default:
					t.Errorf("call during disconnects: %v", err)
				}
			}
		})
	}
	wg.Go(func() {
		pace := time.NewTicker(time.Millisecond)
		defer pace.Stop()
		for j := 0; ctx.Err() == nil && j < 100000; j++ {
			e.srv.Disconnect(names[j%len(names)], status.Error(codes.Unavailable, "churn"))
			_ = e.srv.CallAll(ctx, wrapperspb.String("all"))
			select {
			case <-pace.C:
			case <-ctx.Done():
			}
		}
	})
	// Let the churn run a while, then shut down in the middle of it.
	within(t, 10*time.Second, "several disconnects of a", func() {
		for e.events.count("disconnect", "a") < 3 {
			time.Sleep(2 * time.Millisecond)
		}
	})
	within(t, 10*time.Second, "Close during churn", e.srv.Close)
	cancel()
	within(t, 10*time.Second, "callers to return", wg.Wait)
}

func testOversizedRequest(t *testing.T, tr transport) {
	e := newEnv(t, tr, ServerOptions{MaxFrameBytes: 64 << 10})
	reg := NewHandlerRegistry()
	mustRegister(t, reg, func(_ context.Context, n *wrapperspb.Int64Value) (*wrapperspb.StringValue, error) {
		return wrapperspb.String(strings.Repeat("y", int(n.GetValue()))), nil
	})
	e.startClient(ClientOptions{Name: "a", Handlers: reg})
	_, err := e.srv.Call(context.Background(), "a", wrapperspb.String(strings.Repeat("x", 128<<10)))
	wantCode(t, err, codes.ResourceExhausted)
	// A response too large for the server is refused on the client side,
	// and the connection survives it.
	_, err = e.srv.Call(context.Background(), "a", wrapperspb.Int64(128<<10))
	wantCode(t, err, codes.ResourceExhausted)
	resp, err := Call[*wrapperspb.StringValue](context.Background(), e.srv, "a", wrapperspb.Int64(10))
	if err != nil || resp.GetValue() != "yyyyyyyyyy" {
		t.Fatalf("call after refused response: %v, %v", resp, err)
	}
	// Many responses near the limit at once: transports that batch must
	// keep every batch within the smaller side's limit.
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			resp, err := Call[*wrapperspb.StringValue](ctx, e.srv, "a", wrapperspb.Int64(40<<10))
			if err != nil || len(resp.GetValue()) != 40<<10 {
				t.Errorf("concurrent large response: %d bytes, %v", len(resp.GetValue()), err)
			}
		})
	}
	wg.Wait()
}
