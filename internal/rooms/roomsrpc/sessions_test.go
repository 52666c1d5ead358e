package roomsrpc_test

import (
	"testing"
	"time"

	"connectrpc.com/connect"
	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/rooms"
	"github.com/croupier/croupier/internal/store/storetest"
)

// endsWith waits (10 s at most) for the stream's ErrorMessage with code,
// then for the stream to end.
func (s *stream) endsWith(code string) {
	s.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m, ok := <-s.msgs:
			if !ok {
				s.t.Fatalf("stream ended (%v) without an ErrorMessage %s", <-s.end, code)
			}
			if m.GetError() == nil {
				continue
			}
			if m.GetError().GetCode() != code {
				s.t.Fatalf("ErrorMessage %v, want %s", m.GetError(), code)
			}
			for range s.msgs { //nolint:revive // the stream must end after its last message
			}
			return
		case <-timeout:
			s.t.Fatalf("the stream is still open 10 s later; want it ended with %s", code)
		}
	}
}

// TestLogoutEndsStreams: Logout ends the session's open streams with
// TOKEN_REVOKED; a chat sent on them is not broadcast.
func TestLogoutEndsStreams(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t)
	owner := e.register("")
	room := e.createRoom(owner, &clientv1.CreateRoomRequest{})
	alice, bob := e.register(""), e.register("")
	e.join(alice, room)
	e.join(bob, room)
	watcher := e.openStream(bob, room, 0)
	watcher.next(isReady)
	s := e.openStream(alice, room, 0)
	s.next(isReady)
	if _, err := e.c.Logout(ctx, connect.NewRequest(&clientv1.LogoutRequest{RefreshToken: alice.refresh})); err != nil {
		t.Fatal(err)
	}
	_, err := e.c.GetRoomInfo(ctx, as(alice, &clientv1.GetRoomInfoRequest{RoomId: room}))
	wantCode(t, err, connect.CodeUnauthenticated, apierr.CodeTokenRevoked)
	_ = s.bs.Send(chatMsg("after logout")) // may fail: the stream is ending
	s.endsWith(apierr.CodeTokenRevoked)
	watcher.send(chatMsg("bob's"))
	if m := watcher.next(isChat); m.GetChat().GetContent() != "bob's" {
		t.Fatalf("chat %q from %s reached the room after its session was revoked", m.GetChat().GetContent(), m.GetChat().GetUser().GetUsername())
	}
}

// TestRefreshReuseEndsStreams: a refresh token presented again revokes its
// session, and the streams opened with the session (a thief's) end.
func TestRefreshReuseEndsStreams(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *rooms.Config) { c.RefreshReuseGrace = -1 })
	ctx := ctxT(t)
	owner := e.register("")
	room := e.createRoom(owner, &clientv1.CreateRoomRequest{})
	alice := e.register("")
	e.join(alice, room)
	stolen, err := e.c.RefreshToken(ctx, connect.NewRequest(&clientv1.RefreshTokenRequest{RefreshToken: alice.refresh}))
	if err != nil {
		t.Fatal(err)
	}
	thief := player{id: alice.id, name: alice.name, token: stolen.Msg.GetAccessToken()}
	s := e.openStream(thief, room, 0)
	s.next(isReady)
	_, err = e.c.RefreshToken(ctx, connect.NewRequest(&clientv1.RefreshTokenRequest{RefreshToken: alice.refresh}))
	wantCode(t, err, connect.CodeUnauthenticated, apierr.CodeTokenRevoked)
	s.endsWith(apierr.CodeTokenRevoked)
}

// TestLogoutOnAnotherNodeEndsStreams: a session revoked through one node
// ends its streams on another node sharing the database, at that node's
// next session check.
func TestLogoutOnAnotherNodeEndsStreams(t *testing.T) {
	t.Parallel()
	st := storetest.SQLite(t)
	a := newEnvOn(t, st, func(c *rooms.Config) { c.SessionCheck = 20 * time.Millisecond })
	b := newEnvOn(t, st)
	ctx := ctxT(t)
	owner := a.register("")
	room := a.createRoom(owner, &clientv1.CreateRoomRequest{})
	alice, bob := a.register(""), a.register("")
	a.join(alice, room)
	a.join(bob, room)
	other := a.openStream(bob, room, 0)
	other.next(isReady)
	s := a.openStream(alice, room, 0)
	s.next(isReady)
	if _, err := b.c.Logout(ctx, connect.NewRequest(&clientv1.LogoutRequest{RefreshToken: alice.refresh})); err != nil {
		t.Fatal(err)
	}
	s.endsWith(apierr.CodeTokenRevoked)
	other.send(chatMsg("still here"))
	if m := other.next(isChat); m.GetChat().GetContent() != "still here" {
		t.Fatalf("chat %q", m.GetChat().GetContent())
	}
}
