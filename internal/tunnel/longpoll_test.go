package tunnel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	tunnelv1 "github.com/croupier/croupier/api/croupier/tunnel/v1"
)

func pingFrame(n uint64) *tunnelv1.ClientToServer {
	return &tunnelv1.ClientToServer{Frame: &tunnelv1.ClientToServer_Ping{Ping: &tunnelv1.Ping{Nonce: n}}}
}

func serverPing(n uint64) *tunnelv1.ServerToClient {
	return &tunnelv1.ServerToClient{Frame: &tunnelv1.ServerToClient_Ping{Ping: &tunnelv1.Ping{Nonce: n}}}
}

func newTestSession(t *testing.T) *lpSession {
	sess := newLPSession(context.Background(), newLimits(0), &tunnelv1.Hello{Name: "a"})
	t.Cleanup(func() { sess.close(nil) })
	if f, err := sess.Recv(); err != nil || f.GetHello().GetName() != "a" {
		t.Fatalf("first Recv = %v, %v; want the hello", f, err)
	}
	return sess
}

// TestLongPollSendAppliedOnce: a retried send (same seq) is acknowledged but
// not applied again; a gap is refused.
func TestLongPollSendAppliedOnce(t *testing.T) {
	sess := newTestSession(t)
	ctx := context.Background()
	for range 3 {
		if err := sess.applySend(ctx, 1, []*tunnelv1.ClientToServer{pingFrame(1), pingFrame(2)}); err != nil {
			t.Fatal(err)
		}
	}
	err := sess.applySend(ctx, 3, []*tunnelv1.ClientToServer{pingFrame(9)})
	wantCode(t, err, codes.FailedPrecondition)
	if err := sess.applySend(ctx, 2, []*tunnelv1.ClientToServer{pingFrame(3)}); err != nil {
		t.Fatal(err)
	}
	for want := uint64(1); want <= 3; want++ {
		f, err := sess.Recv()
		if err != nil || f.GetPing().GetNonce() != want {
			t.Fatalf("Recv = %v, %v; want ping %d", f, err, want)
		}
	}
	if len(sess.in) != 0 || len(sess.cur) != 0 {
		t.Fatalf("%d batches and %d frames left over; a retried batch was applied twice", len(sess.in), len(sess.cur))
	}
}

// TestLongPollPollRedelivers: a batch stays until acknowledged, and a poll
// that does not acknowledge it gets it again.
func TestLongPollPollRedelivers(t *testing.T) {
	sess := newTestSession(t)
	ctx := context.Background()
	if err := sess.Send(serverPing(1)); err != nil {
		t.Fatal(err)
	}
	first, err := sess.poll(ctx, 0, time.Second)
	if err != nil || first.GetSeq() != 1 || len(first.GetFrames()) != 1 {
		t.Fatalf("poll = %v, %v; want batch 1 with one frame", first, err)
	}
	if err := sess.Send(serverPing(2)); err != nil {
		t.Fatal(err)
	}
	// The response to the first poll was lost: the client polls with ack 0.
	again, err := sess.poll(ctx, 0, time.Second)
	if err != nil || !proto.Equal(again, first) {
		t.Fatalf("repeated poll = %v, %v; want batch 1 again", again, err)
	}
	next, err := sess.poll(ctx, 1, time.Second)
	if err != nil || next.GetSeq() != 2 || next.GetFrames()[0].GetPing().GetNonce() != 2 {
		t.Fatalf("poll after ack = %v, %v; want batch 2", next, err)
	}
	_, err = sess.poll(ctx, 7, time.Second)
	wantCode(t, err, codes.FailedPrecondition)
	empty, err := sess.poll(ctx, 2, 20*time.Millisecond)
	if err != nil || empty.GetSeq() != 0 || len(empty.GetFrames()) != 0 {
		t.Fatalf("idle poll = %v, %v; want an empty response", empty, err)
	}
}

// lossyTransport performs every request but loses the response to every
// nth send and every nth poll, as a flaky proxy would. Each kind has its own
// count, so which responses are lost is fixed by the order of that kind's
// requests, not by how sends and polls interleave: n sends (polls) lose one
// send (poll) response, whatever the timing.
type lossyTransport struct {
	base  http.RoundTripper
	every int64
	seen  sync.Map // op -> *atomic.Int64
	lost  sync.Map // op -> *atomic.Int64
}

func counter(m *sync.Map, op string) *atomic.Int64 {
	v, _ := m.LoadOrStore(op, new(atomic.Int64))
	return v.(*atomic.Int64)
}

func (l *lossyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := l.base.RoundTrip(r)
	op := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	if err != nil || (op != "send" && op != "poll") || counter(&l.seen, op).Add(1)%l.every != 0 {
		return resp, err
	}
	_ = resp.Body.Close()
	counter(&l.lost, op).Add(1)
	return nil, errors.New("injected: response lost")
}

func (l *lossyTransport) lostCount(op string) int64 { return counter(&l.lost, op).Load() }

// TestLongPollExactlyOnceOverLossyNetwork: with responses lost, every call
// still completes and every handler runs exactly once.
func TestLongPollExactlyOnceOverLossyNetwork(t *testing.T) {
	srv := NewServer(ServerOptions{Logger: testLogger(t)})
	hs := httptest.NewServer(srv.LongPollHandler())
	t.Cleanup(func() {
		srv.Close()
		hs.Close()
	})
	lossy := &lossyTransport{base: &http.Transport{MaxIdleConnsPerHost: 8}, every: 3}
	var runs atomic.Int64
	reg := NewHandlerRegistry()
	mustRegister(t, reg, func(_ context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		runs.Add(1)
		return req, nil
	})
	c := NewLongPollClient(hs.URL+"/t", &http.Client{Transport: lossy}, ClientOptions{Name: "a", Handlers: reg, Logger: testLogger(t)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	waitFor(t, 5*time.Second, func() bool { return srv.Connected("a") }, "the client to connect")

	// One call at a time first: each needs at least one poll response (that
	// brings it) and one send response (that answers it), so these calls
	// alone make at least `every` of each and lose at least one of each.
	for i := range 2 * lossy.every {
		cctx, ccancel := context.WithTimeout(context.Background(), 20*time.Second)
		in := fmt.Sprint("seq-", i)
		resp, err := Call[*wrapperspb.StringValue](cctx, srv, "a", wrapperspb.String(in))
		ccancel()
		if err != nil || resp.GetValue() != in {
			t.Fatalf("sequential call %d: %v", i, err)
		}
	}
	if lossy.lostCount("send") == 0 || lossy.lostCount("poll") == 0 {
		t.Fatalf("lost %d send and %d poll responses; the transport must lose both by now", lossy.lostCount("send"), lossy.lostCount("poll"))
	}

	const calls = 200
	var wg sync.WaitGroup
	for i := range calls {
		wg.Go(func() {
			cctx, ccancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer ccancel()
			in := strings.Repeat("x", i)
			resp, err := Call[*wrapperspb.StringValue](cctx, srv, "a", wrapperspb.String(in))
			if err != nil || resp.GetValue() != in {
				t.Errorf("call %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if n, want := runs.Load(), calls+2*lossy.every; n != want {
		t.Fatalf("handlers ran %d times for %d calls", n, want)
	}
	if c := srv.Clients(); len(c) != 1 {
		t.Fatalf("clients %v; the session should have survived the losses", c)
	}
}

func TestLongPollHTTPErrors(t *testing.T) {
	srv := NewServer(ServerOptions{Logger: testLogger(t), MaxFrameBytes: 1 << 10})
	t.Cleanup(srv.Close)
	h := srv.LongPollHandler()
	post := func(path string, body []byte) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body)))
		return rec
	}
	mustMarshal := func(m proto.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/x/poll", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", rec.Code)
	}
	cases := []struct {
		name string
		path string
		body []byte
		http int
		code codes.Code
	}{
		{"unknown endpoint", "/x/nope", nil, 404, codes.NotFound},
		{"unknown session", "/x/poll", mustMarshal(&tunnelv1.LongPollPollRequest{SessionId: "nope", WaitMs: 1}), 404, codes.NotFound},
		{"garbage", "/x/poll", []byte{0xff, 0xff, 0xff}, 400, codes.InvalidArgument},
		{"open without hello", "/x/open", nil, 400, codes.InvalidArgument},
		{"bad name", "/x/open", mustMarshal(&tunnelv1.LongPollOpenRequest{Hello: &tunnelv1.Hello{Name: "a\nb"}}), 400, codes.InvalidArgument},
		{"oversized send", "/prefix/deeper/send", mustMarshal(&tunnelv1.LongPollSendRequest{SessionId: "s", Seq: 1, Frames: []*tunnelv1.ClientToServer{
			{Frame: &tunnelv1.ClientToServer_Response{Response: &tunnelv1.Response{Id: 1, Result: &tunnelv1.Response_Error{Error: status.New(codes.Internal, strings.Repeat("x", 4<<10)).Proto()}}}},
		}}), 429, codes.ResourceExhausted},
	}
	for _, c := range cases {
		rec := post(c.path, c.body)
		if rec.Code != c.http {
			t.Errorf("%s: HTTP %d, want %d (%s)", c.name, rec.Code, c.http, rec.Body)
			continue
		}
		err := responseError("test", &http.Response{StatusCode: rec.Code, Status: http.StatusText(rec.Code), Header: rec.Header(), Request: httptest.NewRequest(http.MethodPost, c.path, nil)}, rec.Body.Bytes())
		if status.Code(err) != c.code {
			t.Errorf("%s: decoded %v, want %s", c.name, err, c.code)
		}
	}
}

// TestLongPollProxyErrorsAreRetried: an error response that did not come
// from the tunnel server (no status header) is transient.
func TestLongPollProxyErrorsAreRetried(t *testing.T) {
	req := httptest.NewRequest(http.MethodPost, "/t/poll", nil)
	for _, code := range []int{502, 503, 504} {
		err := responseError("poll", &http.Response{StatusCode: code, Status: http.StatusText(code), Header: http.Header{}, Request: req}, []byte("<html>bad gateway</html>"))
		var tr *transientError
		if !errors.As(err, &tr) {
			t.Errorf("proxy %d: %v is not transient", code, err)
		}
	}
	h := http.Header{}
	h.Set(statusHeader, "5")
	body, _ := proto.Marshal(status.New(codes.NotFound, "gone").Proto())
	err := responseError("poll", &http.Response{StatusCode: 404, Header: h, Request: req}, body)
	var tr *transientError
	if errors.As(err, &tr) || status.Code(err) != codes.NotFound {
		t.Errorf("server 404: %v; want a final NOT_FOUND", err)
	}
}
