package tunnel

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	tunnelv1 "github.com/croupier/croupier/api/croupier/tunnel/v1"
)

// transport is one entry of the conformance table: it exposes a Server over
// a real listener on 127.0.0.1 and returns the client side.
type transport struct {
	name  string
	start func(t testing.TB, srv *Server) clientSide
}

// clientSide connects to a started transport.
type clientSide struct {
	newClient func(opts ClientOptions) *Client
	// dial opens a raw link, for tests that play a misbehaving client.
	dial dialFunc
	// dialStuck sends the hello and then never reads or writes again: a
	// client whose process froze or whose network silently died.
	dialStuck func(ctx context.Context, hello *tunnelv1.Hello) error
}

var transports = []transport{
	{name: "grpc", start: startGRPC},
	{name: "longpoll", start: startLongPollTLS},
	{name: "conn", start: startConn},
}

// startConn serves the conn transport through a ConnMux, as the agent's
// SDK port does.
func startConn(t testing.TB, srv *Server) clientSide {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := NewConnMux(lis, srv)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = mux.Serve(ctx)
	}()
	t.Cleanup(func() {
		srv.Close()
		_ = mux.Close()
		cancel()
		<-served
	})
	var d net.Dialer
	dial := func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", lis.Addr().String()) }
	return clientSide{
		newClient: func(opts ClientOptions) *Client { return NewConnClient(dial, opts) },
		dial: func(ctx context.Context, hello *tunnelv1.Hello) (clientLink, error) {
			return dialConn(ctx, dial, hello)
		},
		dialStuck: func(ctx context.Context, hello *tunnelv1.Hello) error {
			// The link is never read or closed; ctx ending releases it.
			_, err := dialConn(ctx, dial, hello)
			return err
		},
	}
}

func startGRPC(t testing.TB, srv *Server) clientSide {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(GRPCServerOptions()...)
	srv.RegisterGRPC(gs)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = gs.Serve(lis)
	}()
	cc, err := grpc.NewClient(lis.Addr().String(), append(GRPCDialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Close()
		_ = cc.Close()
		gs.Stop()
		<-served
	})
	tc := tunnelv1.NewTunnelServiceClient(cc)
	return clientSide{
		newClient: func(opts ClientOptions) *Client { return NewGRPCClient(cc, opts) },
		dial: func(ctx context.Context, hello *tunnelv1.Hello) (clientLink, error) {
			return dialGRPC(ctx, tc, hello)
		},
		dialStuck: func(ctx context.Context, hello *tunnelv1.Hello) error {
			// A connection of its own, as a separate agent would have:
			// a stream nobody reads eventually stalls the HTTP/2
			// connection it shares, which is not what is under test.
			own, err := grpc.NewClient(lis.Addr().String(), append(GRPCDialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
			if err != nil {
				return err
			}
			context.AfterFunc(ctx, func() { _ = own.Close() })
			// The link is never read or closed; ctx ending releases it.
			_, err = dialGRPC(ctx, tunnelv1.NewTunnelServiceClient(own), hello)
			return err
		},
	}
}

// startLongPollTLS serves the long-poll transport over TLS with HTTP/2
// disabled on both ends, and fails the test if any request is not HTTP/1.1.
func startLongPollTLS(t testing.TB, srv *Server) clientSide {
	return startLongPoll(t, srv, true)
}

func startLongPoll(t testing.TB, srv *Server, useTLS bool) clientSide {
	mux := http.NewServeMux()
	h := srv.LongPollHandler()
	mux.Handle("/tunnel/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 1 || r.ProtoMinor != 1 {
			t.Errorf("long-poll request over %s, want HTTP/1.1", r.Proto)
		}
		h.ServeHTTP(w, r)
	}))
	hs := httptest.NewUnstartedServer(mux)
	hs.EnableHTTP2 = false
	// A non-nil empty TLSNextProto disables h2 on the server side.
	hs.Config.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	hs.Config.ErrorLog = nil
	var hc *http.Client
	if useTLS {
		hs.StartTLS()
		hc = hs.Client()
		tr := hc.Transport.(*http.Transport)
		tr.ForceAttemptHTTP2 = false
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		tr.MaxIdleConnsPerHost = 16
	} else {
		hs.Start()
		hc = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	}
	t.Cleanup(func() {
		srv.Close()
		hs.CloseClientConnections()
		hs.Close()
	})
	base := hs.URL + "/tunnel"
	cfg := lpClientConfig{base: base, hc: hc, lim: newLimits(0), pollWait: defaultPollWait, retryWindow: 5 * time.Second, reqTimeout: 5 * time.Second}
	return clientSide{
		newClient: func(opts ClientOptions) *Client { return NewLongPollClient(base, hc, opts) },
		dial: func(ctx context.Context, hello *tunnelv1.Hello) (clientLink, error) {
			return dialLongPoll(ctx, cfg, hello)
		},
		dialStuck: func(ctx context.Context, hello *tunnelv1.Hello) error {
			// Open the session and never poll or send.
			return cfg.post(ctx, "open", &tunnelv1.LongPollOpenRequest{Hello: hello}, cfg.reqTimeout, nil)
		},
	}
}

// env is a server with one transport and helpers to attach clients.
type env struct {
	t      *testing.T
	srv    *Server
	cs     clientSide
	events *eventLog
}

func newEnv(t *testing.T, tr transport, opts ServerOptions) *env {
	t.Helper()
	ev := &eventLog{}
	userConnect, userDisconnect := opts.OnConnect, opts.OnDisconnect
	opts.OnConnect = func(name string) {
		ev.add(event{kind: "connect", name: name})
		if userConnect != nil {
			userConnect(name)
		}
	}
	opts.OnDisconnect = func(name string, err error) {
		ev.add(event{kind: "disconnect", name: name, err: err})
		if userDisconnect != nil {
			userDisconnect(name, err)
		}
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	srv := NewServer(opts)
	return &env{t: t, srv: srv, cs: tr.start(t, srv), events: ev}
}

// startClient runs a Client until the test ends and waits until the server
// sees it connected.
func (e *env) startClient(opts ClientOptions) {
	e.t.Helper()
	e.runClient(opts)
	waitFor(e.t, 5*time.Second, func() bool { return e.srv.Connected(opts.Name) }, "client %q to connect", opts.Name)
}

// runClient runs a Client until the test ends or stop is called; stop
// waits for Run to return.
func (e *env) runClient(opts ClientOptions) (stop func()) {
	e.t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(e.t)
	}
	if opts.MinBackoff == 0 {
		opts.MinBackoff, opts.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond
	}
	c := e.cs.newClient(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					e.t.Errorf("client %q: Run returned %v", opts.Name, err)
				}
			case <-time.After(10 * time.Second):
				e.t.Errorf("client %q: Run did not return within 10s of cancel", opts.Name)
			}
		})
	}
	e.t.Cleanup(stop)
	return stop
}

// stuck connects a client that sends its hello and then goes silent.
func (e *env) stuck(name string, maxInFlight uint32) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e.t.Cleanup(cancel)
	err := e.cs.dialStuck(ctx, &tunnelv1.Hello{Name: name, MaxInFlight: maxInFlight, ProtocolVersion: protocolVersion})
	if err != nil {
		e.t.Fatalf("stuck client %q: %v", name, err)
	}
	waitFor(e.t, 5*time.Second, func() bool { return e.srv.Connected(name) }, "stuck client %q to connect", name)
}

// inFlight is the number of calls the server has outstanding to name.
func (e *env) inFlight(name string) int {
	c := e.srv.lookup(name)
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.calls)
}

type event struct {
	kind string
	name string
	err  error
}

type eventLog struct {
	mu     sync.Mutex
	events []event
}

func (l *eventLog) add(e event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

func (l *eventLog) list() []event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]event(nil), l.events...)
}

func (l *eventLog) count(kind, name string) int {
	n := 0
	for _, e := range l.list() {
		if e.kind == kind && e.name == name {
			n++
		}
	}
	return n
}

// waitFor polls cond every few milliseconds until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, fmt.Sprintf(format, args...))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// within runs fn and fails the test if it has not returned after timeout.
func within(t testing.TB, timeout time.Duration, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(timeout):
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("%s did not finish within %s (deadlock?)\n%s", what, timeout, buf)
	}
}

// testLogger sends logs to t.Log so they show only for failing tests.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
