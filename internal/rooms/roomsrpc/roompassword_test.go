package roomsrpc_test

import (
	"errors"
	"testing"
	"time"

	"connectrpc.com/connect"
	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/rooms"
)

// retryAfter is the retry_after_ms detail of a RATE_LIMITED error.
func retryAfter(t *testing.T, err error) string {
	t.Helper()
	var ce *connect.Error
	if !errors.As(err, &ce) {
		t.Fatalf("not a connect error: %v", err)
	}
	for _, d := range ce.Details() {
		if v, derr := d.Value(); derr == nil {
			if ei, ok := v.(*croupierv1.ErrorInfo); ok {
				return ei.GetDetails()["retry_after_ms"]
			}
		}
	}
	t.Fatalf("no ErrorInfo in %v", err)
	return ""
}

// TestRoomPasswordThrottle: wrong room passwords are throttled as logins
// are — after 5 wrong guesses by a user in a room (or from an address, for
// guests) the next attempt is refused with RESOURCE_EXHAUSTED RATE_LIMITED
// and a retry hint, before the password is checked — and the wait passes.
func TestRoomPasswordThrottle(t *testing.T) {
	t.Parallel()
	clk := &clock{now: time.Now()}
	e := newEnv(t, func(c *rooms.Config) { c.Now = clk.Now })
	ctx := ctxT(t)
	owner := e.register("")
	room := e.createRoom(owner, &clientv1.CreateRoomRequest{Password: "secret", Settings: &clientv1.RoomSettings{AllowGuests: true}})
	other := e.createRoom(owner, &clientv1.CreateRoomRequest{Password: "secret"})
	mallory, carol := e.register(""), e.register("")

	for i := range 5 {
		_, err := e.c.JoinRoom(ctx, as(mallory, &clientv1.JoinRoomRequest{RoomId: room, Password: "guess"}))
		if connect.CodeOf(err) != connect.CodePermissionDenied {
			t.Fatalf("guess %d: %v, want PERMISSION_DENIED ROOM_PASSWORD_INVALID", i+1, err)
		}
	}
	_, err := e.c.JoinRoom(ctx, as(mallory, &clientv1.JoinRoomRequest{RoomId: room, Password: "secret"}))
	wantCode(t, err, connect.CodeResourceExhausted, apierr.CodeRateLimited)
	if retryAfter(t, err) == "" {
		t.Fatalf("no retry_after_ms in %v", err)
	}
	// Others at the same address (all test clients are 127.0.0.1, as
	// players behind one NAT) guess too — 25 wrong guesses from it in all.
	for range 4 {
		u := e.register("")
		for range 5 {
			if _, err := e.c.JoinRoom(ctx, as(u, &clientv1.JoinRoomRequest{RoomId: room, Password: "guess"})); connect.CodeOf(err) != connect.CodePermissionDenied {
				t.Fatalf("another user's guess: %v", err)
			}
		}
	}
	// Another user, and the same user in another room, are not held back.
	if _, err := e.c.JoinRoom(ctx, as(carol, &clientv1.JoinRoomRequest{RoomId: room, Password: "secret"})); err != nil {
		t.Fatalf("carol: %v", err)
	}
	if _, err := e.c.JoinRoom(ctx, as(mallory, &clientv1.JoinRoomRequest{RoomId: other, Password: "secret"})); err != nil {
		t.Fatalf("mallory in another room: %v", err)
	}
	clk.advance(2 * time.Second)
	if _, err := e.c.JoinRoom(ctx, as(mallory, &clientv1.JoinRoomRequest{RoomId: room, Password: "secret"})); err != nil {
		t.Fatalf("after the wait: %v", err)
	}

	// Guests have no user yet: their guesses count per room and address.
	for i := range 5 {
		_, err := e.c.GuestJoin(ctx, connect.NewRequest(&clientv1.GuestJoinRequest{RoomId: room, Name: "g", Password: "guess"}))
		if connect.CodeOf(err) != connect.CodePermissionDenied {
			t.Fatalf("guest guess %d: %v, want PERMISSION_DENIED ROOM_PASSWORD_INVALID", i+1, err)
		}
	}
	_, err = e.c.GuestJoin(ctx, connect.NewRequest(&clientv1.GuestJoinRequest{RoomId: room, Name: "g", Password: "secret"}))
	wantCode(t, err, connect.CodeResourceExhausted, apierr.CodeRateLimited)
	clk.advance(2 * time.Second)
	if _, err := e.c.GuestJoin(ctx, connect.NewRequest(&clientv1.GuestJoinRequest{RoomId: room, Name: "g", Password: "secret"})); err != nil {
		t.Fatalf("guest after the wait: %v", err)
	}
}
