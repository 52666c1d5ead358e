package roomsrpc_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"github.com/croupier/croupier/api/synctv/client/v1/clientv1connect"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/auth"
	"github.com/croupier/croupier/internal/ratelimit"
	"github.com/croupier/croupier/internal/rooms"
	"github.com/croupier/croupier/internal/rooms/roomsrpc"
	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/store/storetest"
)

// fastArgon keeps password hashing cheap in tests.
var fastArgon = auth.Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

type env struct {
	t   *testing.T
	svc *rooms.Service
	url string
	// c is a Connect-protocol client; grpc a gRPC one (same listener).
	c    clientv1connect.ClientServiceClient
	grpc clientv1connect.ClientServiceClient
	http *http.Client
	n    atomic.Int64
}

type envOption func(*rooms.Config)

// newEnv starts a store (SQLite unless driver says postgres), the service
// and its listener on 127.0.0.1:0.
func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	return newEnvOn(t, storetest.SQLite(t), opts...)
}

func newEnvOn(t *testing.T, st *store.Store, opts ...envOption) *env {
	t.Helper()
	return newEnvWith(t, st, roomsrpc.Options{}, opts...)
}

// newEnvWith is newEnvOn with the transport's options.
func newEnvWith(t *testing.T, st *store.Store, ro roomsrpc.Options, opts ...envOption) *env {
	t.Helper()
	// Tests sign up and change playback and playlists faster than players
	// may, all from 127.0.0.1; the limits have their own tests
	// (TestControlRateLimit, TestSignupLimit).
	cfg := rooms.Config{Store: st, Argon2: fastArgon, LoginThrottle: ratelimit.LoginConfig{}, ControlPerSecond: 1000,
		SignupsPerMinute: 1e6, SignupBurst: 1e6}
	for _, o := range opts {
		o(&cfg)
	}
	svc, err := rooms.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	roomsrpc.Mount(mux, svc, ro)
	srv, err := roomsrpc.Listen(roomsrpc.ServerConfig{Addr: "127.0.0.1:0"}, mux)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	t.Cleanup(func() {
		svc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	hc := h2cClient()
	t.Cleanup(hc.CloseIdleConnections)
	return &env{t: t, svc: svc, url: srv.URL(), http: hc,
		c:    clientv1connect.NewClientServiceClient(hc, srv.URL()),
		grpc: clientv1connect.NewClientServiceClient(hc, srv.URL(), connect.WithGRPC())}
}

// h2cClient speaks HTTP/2 without TLS (what bidi streams need).
func h2cClient() *http.Client {
	tr := &http.Transport{}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: tr}
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// player is a registered user with its token.
type player struct {
	id, name, token, refresh string
}

func (e *env) register(name string) player {
	e.t.Helper()
	if name == "" {
		name = fmt.Sprintf("p%d", e.n.Add(1))
	}
	resp, err := e.c.Register(ctxT(e.t), connect.NewRequest(&clientv1.RegisterRequest{Username: name, Password: "password-" + name}))
	if err != nil {
		e.t.Fatalf("register %s: %v", name, err)
	}
	return player{id: resp.Msg.GetUser().GetId(), name: name, token: resp.Msg.GetAccessToken(), refresh: resp.Msg.GetRefreshToken()}
}

func as[T any](p player, msg *T) *connect.Request[T] {
	r := connect.NewRequest(msg)
	if p.token != "" {
		r.Header().Set("Authorization", "Bearer "+p.token)
	}
	return r
}

// createRoom creates a room owned by p.
func (e *env) createRoom(p player, req *clientv1.CreateRoomRequest) string {
	e.t.Helper()
	if req.Name == "" {
		req.Name = fmt.Sprintf("room %d", e.n.Add(1))
	}
	resp, err := e.c.CreateRoom(ctxT(e.t), as(p, req))
	if err != nil {
		e.t.Fatalf("create room: %v", err)
	}
	return resp.Msg.GetRoom().GetId()
}

func (e *env) join(p player, room string) {
	e.t.Helper()
	if _, err := e.c.JoinRoom(ctxT(e.t), as(p, &clientv1.JoinRoomRequest{RoomId: room})); err != nil {
		e.t.Fatalf("%s joins %s: %v", p.name, room, err)
	}
}

// withMovie adds a movie and makes it current; returns its id.
func (e *env) withMovie(p player, room string) string {
	e.t.Helper()
	mv, err := e.c.AddMovie(ctxT(e.t), as(p, &clientv1.AddMovieRequest{RoomId: room, Url: "https://example.com/a.mp4"}))
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.c.SetCurrentMovie(ctxT(e.t), as(p, &clientv1.SetCurrentMovieRequest{RoomId: room, MovieId: mv.Msg.GetMovie().GetId()})); err != nil {
		e.t.Fatal(err)
	}
	return mv.Msg.GetMovie().GetId()
}

// wantCode checks err's connect code and, if code is non-empty, its
// ErrorInfo code.
func wantCode(t *testing.T, err error, want connect.Code, info string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got success, want %v %s", want, info)
	}
	if got := connect.CodeOf(err); got != want {
		t.Fatalf("got %v (%v), want %v", got, err, want)
	}
	if info == "" {
		return
	}
	var ce *connect.Error
	if !errors.As(err, &ce) {
		t.Fatalf("not a connect error: %v", err)
	}
	for _, d := range ce.Details() {
		v, derr := d.Value()
		if derr != nil {
			continue
		}
		if ei, ok := v.(interface{ GetCode() string }); ok {
			if ei.GetCode() != info {
				t.Fatalf("ErrorInfo code %s, want %s (%v)", ei.GetCode(), info, err)
			}
			return
		}
	}
	t.Fatalf("no ErrorInfo in %v, want %s", err, info)
}

// stream is an open MessageStream with a background reader.
type stream struct {
	t    *testing.T
	bs   *connect.BidiStreamForClient[clientv1.ClientMessage, clientv1.ServerMessage]
	msgs chan *clientv1.ServerMessage
	end  chan error
}

func (e *env) openStream(p player, room string, after int64) *stream {
	e.t.Helper()
	return e.openStreamWith(e.grpc, p, room, after)
}

func (e *env) openStreamWith(c clientv1connect.ClientServiceClient, p player, room string, after int64) *stream {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	bs := c.MessageStream(ctx)
	bs.RequestHeader().Set("Authorization", "Bearer "+p.token)
	if err := bs.Send(&clientv1.ClientMessage{Payload: &clientv1.ClientMessage_Hello{Hello: &clientv1.StreamHello{RoomId: room, AfterSeq: after}}}); err != nil {
		e.t.Fatalf("hello: %v", err)
	}
	s := &stream{t: e.t, bs: bs, msgs: make(chan *clientv1.ServerMessage, 20000), end: make(chan error, 1)}
	go func() {
		for {
			m, err := bs.Receive()
			if err != nil {
				s.end <- err
				close(s.msgs)
				return
			}
			s.msgs <- m
		}
	}()
	e.t.Cleanup(func() {
		cancel()
		_ = bs.CloseRequest()
		for range s.msgs { //nolint:revive // drain until the reader ends
		}
	})
	return s
}

func (s *stream) send(m *clientv1.ClientMessage) {
	s.t.Helper()
	if err := s.bs.Send(m); err != nil {
		s.t.Fatalf("send: %v", err)
	}
}

// next returns the next message that matches, skipping others, within 20s.
func (s *stream) next(match func(*clientv1.ServerMessage) bool) *clientv1.ServerMessage {
	s.t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case m, ok := <-s.msgs:
			if !ok {
				s.t.Fatalf("stream ended: %v", <-s.end)
			}
			if match(m) {
				return m
			}
		case <-timeout:
			s.t.Fatal("no matching message within 20s")
		}
	}
}

func isReady(m *clientv1.ServerMessage) bool  { return m.GetReady() != nil }
func isChat(m *clientv1.ServerMessage) bool   { return m.GetChat() != nil }
func isState(m *clientv1.ServerMessage) bool  { return m.GetRoomState() != nil }
func isError(m *clientv1.ServerMessage) bool  { return m.GetError() != nil }
func isMember(m *clientv1.ServerMessage) bool { return m.GetMember() != nil }

func chatMsg(text string) *clientv1.ClientMessage {
	return &clientv1.ClientMessage{Payload: &clientv1.ClientMessage_Chat{Chat: &clientv1.ChatMessage{Content: text}}}
}

var _ = strings.Repeat
var _ = apierr.CodeInternal
