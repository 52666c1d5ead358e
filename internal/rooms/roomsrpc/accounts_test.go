package roomsrpc_test

import (
	"strings"
	"testing"

	"connectrpc.com/connect"
	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"github.com/croupier/croupier/api/synctv/client/v1/clientv1connect"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/rooms"
)

func TestAccounts(t *testing.T) {
	t.Parallel()
	// No reuse grace: a replayed refresh token revokes its session at once
	// (the grace is tested in internal/store).
	e := newEnv(t, func(c *rooms.Config) { c.RefreshReuseGrace = -1 })
	ctx := ctxT(t)
	alice := e.register("alice")

	t.Run("register refuses bad input and duplicates", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			req  *clientv1.RegisterRequest
			code connect.Code
			info string
		}{
			{"empty username", &clientv1.RegisterRequest{Password: "password1"}, connect.CodeInvalidArgument, apierr.CodeInvalidArgument},
			{"long username", &clientv1.RegisterRequest{Username: strings.Repeat("a", 65), Password: "password1"}, connect.CodeInvalidArgument, apierr.CodeInvalidArgument},
			{"short password", &clientv1.RegisterRequest{Username: "bob", Password: "short"}, connect.CodeInvalidArgument, apierr.CodeInvalidArgument},
			{"bad email", &clientv1.RegisterRequest{Username: "bob", Password: "password1", Email: "nope"}, connect.CodeInvalidArgument, apierr.CodeInvalidArgument},
			{"taken, other case", &clientv1.RegisterRequest{Username: "ALICE", Password: "password1"}, connect.CodeAlreadyExists, apierr.CodeUserExists},
		} {
			_, err := e.c.Register(ctx, connect.NewRequest(tc.req))
			wantCode(t, err, tc.code, tc.info)
		}
	})

	t.Run("login, refresh rotation and reuse, logout", func(t *testing.T) {
		_, err := e.c.Login(ctx, connect.NewRequest(&clientv1.LoginRequest{Username: "alice", Password: "wrong-password"}))
		wantCode(t, err, connect.CodeUnauthenticated, apierr.CodeInvalidCredentials)
		_, err = e.c.Login(ctx, connect.NewRequest(&clientv1.LoginRequest{Username: "nobody", Password: "password-alice"}))
		wantCode(t, err, connect.CodeUnauthenticated, apierr.CodeInvalidCredentials)
		lr, err := e.c.Login(ctx, connect.NewRequest(&clientv1.LoginRequest{Username: "alice", Password: "password-alice"}))
		if err != nil {
			t.Fatal(err)
		}
		if lr.Msg.GetUser().GetId() != alice.id || lr.Msg.GetExpiresIn() <= 0 {
			t.Fatalf("login returned %v", lr.Msg)
		}
		rr, err := e.c.RefreshToken(ctx, connect.NewRequest(&clientv1.RefreshTokenRequest{RefreshToken: lr.Msg.GetRefreshToken()}))
		if err != nil {
			t.Fatal(err)
		}
		// The new access token works.
		fresh := player{id: alice.id, token: rr.Msg.GetAccessToken()}
		if _, err := e.c.ListMembers(ctx, as(fresh, &clientv1.ListMembersRequest{RoomId: "xxxxxxxxxxxx"})); connect.CodeOf(err) != connect.CodeNotFound {
			t.Fatalf("refreshed token: %v", err)
		}
		// Presenting the spent refresh token again revokes the session.
		_, err = e.c.RefreshToken(ctx, connect.NewRequest(&clientv1.RefreshTokenRequest{RefreshToken: lr.Msg.GetRefreshToken()}))
		wantCode(t, err, connect.CodeUnauthenticated, apierr.CodeTokenRevoked)
		_, err = e.c.CreateRoom(ctx, as(fresh, &clientv1.CreateRoomRequest{Name: "x"}))
		wantCode(t, err, connect.CodeUnauthenticated, apierr.CodeTokenRevoked)

		// Logout ends the session's access tokens at once.
		if _, err := e.c.Logout(ctx, connect.NewRequest(&clientv1.LogoutRequest{RefreshToken: alice.refresh})); err != nil {
			t.Fatal(err)
		}
		_, err = e.c.CreateRoom(ctx, as(alice, &clientv1.CreateRoomRequest{Name: "x"}))
		wantCode(t, err, connect.CodeUnauthenticated, apierr.CodeTokenRevoked)
		_, err = e.c.Logout(ctx, connect.NewRequest(&clientv1.LogoutRequest{RefreshToken: "crt_unknown"}))
		wantCode(t, err, connect.CodeUnauthenticated, apierr.CodeTokenInvalid)
	})

	t.Run("calls without or with bad tokens", func(t *testing.T) {
		_, err := e.c.CreateRoom(ctx, connect.NewRequest(&clientv1.CreateRoomRequest{Name: "x"}))
		wantCode(t, err, connect.CodeUnauthenticated, apierr.CodeUnauthenticated)
		_, err = e.c.CreateRoom(ctx, as(player{token: "not.a.jwt"}, &clientv1.CreateRoomRequest{Name: "x"}))
		wantCode(t, err, connect.CodeUnauthenticated, apierr.CodeTokenInvalid)
		_, err = e.c.CreateRoom(ctx, as(player{token: alice.refresh}, &clientv1.CreateRoomRequest{Name: "x"}))
		wantCode(t, err, connect.CodeUnauthenticated, apierr.CodeTokenInvalid)
	})

	t.Run("login throttling", func(t *testing.T) {
		e.register("carol")
		var err error
		for i := 0; i < 10; i++ {
			_, err = e.c.Login(ctx, connect.NewRequest(&clientv1.LoginRequest{Username: "carol", Password: "wrong-password"}))
			if connect.CodeOf(err) == connect.CodeResourceExhausted {
				break
			}
		}
		wantCode(t, err, connect.CodeResourceExhausted, apierr.CodeRateLimited)
	})
}

// TestProtocols makes the same calls over every protocol the listener
// speaks: Connect (binary and JSON), gRPC and gRPC-Web.
func TestProtocols(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t)
	p := e.register("")
	room := e.createRoom(p, &clientv1.CreateRoomRequest{Name: "protocols"})
	for name, opts := range map[string][]connect.ClientOption{
		"connect":      nil,
		"connect-json": {connect.WithProtoJSON()},
		"grpc":         {connect.WithGRPC()},
		"grpc-web":     {connect.WithGRPCWeb()},
	} {
		c := clientv1connect.NewClientServiceClient(e.http, e.url, opts...)
		info, err := c.GetRoomInfo(ctx, as(p, &clientv1.GetRoomInfoRequest{RoomId: room}))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if info.Msg.GetRoom().GetName() != "protocols" || info.Msg.GetMember().GetRole() != clientv1.MemberRole_MEMBER_ROLE_CREATOR {
			t.Fatalf("%s: %v", name, info.Msg)
		}
		_, err = c.GetRoomInfo(ctx, as(p, &clientv1.GetRoomInfoRequest{RoomId: "missing12345"}))
		wantCode(t, err, connect.CodeNotFound, apierr.CodeRoomNotFound)
		tr, err := c.GetServerTime(ctx, connect.NewRequest(&clientv1.GetServerTimeRequest{ClientTime: 42}))
		if err != nil || tr.Msg.GetClientTime() != 42 || tr.Msg.GetServerSendTime() < tr.Msg.GetServerReceiveTime() {
			t.Fatalf("%s: time %v %v", name, tr, err)
		}
	}

	// One room event is encoded once and sent to every stream as the same
	// bytes (binary protobuf) or as JSON (Connect JSON): each protocol's
	// member decodes the same state.
	e.withMovie(p, room)
	streams := map[string]*stream{}
	for name, opts := range map[string][]connect.ClientOption{
		"connect":      nil,
		"connect-json": {connect.WithProtoJSON()},
		"grpc":         {connect.WithGRPC()},
	} {
		m := e.register("")
		e.join(m, room)
		s := e.openStreamWith(clientv1connect.NewClientServiceClient(h2cClient(), e.url, opts...), m, room, 0)
		s.next(isReady)
		streams[name] = s
	}
	seek, err := e.c.Seek(ctx, as(p, &clientv1.SeekRequest{RoomId: room, Position: 42.5}))
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range streams {
		got := s.next(func(m *clientv1.ServerMessage) bool {
			return isState(m) && m.GetRoomState().GetState().GetVersion() == seek.Msg.GetState().GetVersion()
		})
		if st := got.GetRoomState().GetState(); st.GetPosition() != 42.5 || st.GetMovie().GetUrl() != "https://example.com/a.mp4" || got.GetSeq() == 0 {
			t.Fatalf("%s: %v", name, got)
		}
	}
}
