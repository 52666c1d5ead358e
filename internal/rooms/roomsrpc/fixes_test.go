package roomsrpc_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"github.com/croupier/croupier/api/synctv/client/v1/clientv1connect"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/rooms"
	"github.com/croupier/croupier/internal/rooms/roomsrpc"
	"github.com/croupier/croupier/internal/store/storetest"
)

// clock is a settable clock for rooms.Config.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestGuestToken: a guest's access token lives the guest TTL (24 h by
// default; guests have no refresh token), not the players' 15 minutes,
// and GuestJoin's room says it has a password when it has one.
func TestGuestToken(t *testing.T) {
	t.Parallel()
	clk := &clock{now: time.Now()}
	e := newEnv(t, func(c *rooms.Config) { c.Now = clk.Now })
	ctx := ctxT(t)
	owner := e.register("")
	room := e.createRoom(owner, &clientv1.CreateRoomRequest{Password: "pw", Settings: &clientv1.RoomSettings{AllowGuests: true}})
	g, err := e.c.GuestJoin(ctx, connect.NewRequest(&clientv1.GuestJoinRequest{RoomId: room, Name: "visitor", Password: "pw"}))
	if err != nil {
		t.Fatal(err)
	}
	if !g.Msg.GetRoom().GetHasPassword() {
		t.Error("GuestJoin's room says has_password false for a room with a password")
	}
	if got := g.Msg.GetExpiresIn(); got != int64((24 * time.Hour).Seconds()) {
		t.Errorf("expires_in %d s; want %d (24 h)", got, int64((24 * time.Hour).Seconds()))
	}
	guest := player{id: g.Msg.GetUser().GetId(), token: g.Msg.GetAccessToken()}
	clk.advance(time.Hour)
	if _, err := e.c.GetMovieList(ctx, as(guest, &clientv1.GetMovieListRequest{RoomId: room})); err != nil {
		t.Fatalf("guest token an hour after GuestJoin: %v", err)
	}
	clk.advance(23*time.Hour + time.Minute)
	_, err = e.c.GetMovieList(ctx, as(guest, &clientv1.GetMovieListRequest{RoomId: room}))
	wantCode(t, err, connect.CodeUnauthenticated, apierr.CodeTokenExpired)
}

// TestSetPermissionsOnlyOwnBits: a member or admin holding SET_PERMISSIONS
// grants and removes only bits they hold themselves; the creator any.
func TestSetPermissionsOnlyOwnBits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t)
	owner := e.register("")
	room := e.createRoom(owner, &clientv1.CreateRoomRequest{})
	bob, carol, dave := e.register(""), e.register(""), e.register("")
	for _, p := range []player{bob, carol, dave} {
		e.join(p, room)
	}
	const (
		set  = uint64(clientv1.Permission_PERMISSION_SET_PERMISSIONS)
		chat = uint64(clientv1.Permission_PERMISSION_CHAT)
		live = uint64(clientv1.Permission_PERMISSION_LIVE)
		ban  = uint64(clientv1.Permission_PERMISSION_BAN_MEMBERS)
		add  = uint64(clientv1.Permission_PERMISSION_ADD_MOVIE)
	)
	setPerms := func(actor, target player, role clientv1.MemberRole, mask uint64) (*clientv1.Member, error) {
		r, err := e.c.SetMemberPermissions(ctx, as(actor, &clientv1.SetMemberPermissionsRequest{RoomId: room, UserId: target.id, Role: role, Permissions: mask}))
		if err != nil {
			return nil, err
		}
		return r.Msg.GetMember(), nil
	}
	must := func(actor, target player, role clientv1.MemberRole, mask uint64) {
		t.Helper()
		m, err := setPerms(actor, target, role, mask)
		if err != nil || m.GetPermissions() != mask {
			t.Fatalf("set %s to %#x: %v %v", target.name, mask, m, err)
		}
	}
	refused := func(actor, target player, role clientv1.MemberRole, mask uint64, names ...string) {
		t.Helper()
		_, err := setPerms(actor, target, role, mask)
		wantCode(t, err, connect.CodePermissionDenied, apierr.CodePermissionDenied)
		for _, n := range names {
			if !strings.Contains(err.Error(), n) {
				t.Fatalf("refusal %q does not name %s", err, n)
			}
		}
	}
	member := clientv1.MemberRole_MEMBER_ROLE_UNSPECIFIED
	must(owner, bob, member, set|chat)
	// Bob cannot hand out bits he lacks, nor escalate through carol.
	refused(bob, carol, member, rooms.AllPermissions, "LIVE", "BAN_MEMBERS", "do not hold")
	refused(bob, carol, member, rooms.DefaultMemberPermissions|live, "LIVE")
	// Nor take away a bit he lacks (carol's ADD_MOVIE).
	refused(bob, carol, member, rooms.DefaultMemberPermissions&^add, "ADD_MOVIE")
	// Bits he holds he may grant and remove; the others stay as they are.
	must(bob, carol, member, (rooms.DefaultMemberPermissions&^chat)|set)
	refused(carol, bob, member, rooms.AllPermissions, "BAN_MEMBERS")
	// An admin is bound the same way; only the creator is not.
	must(owner, dave, clientv1.MemberRole_MEMBER_ROLE_ADMIN, set)
	refused(dave, carol, member, rooms.AllPermissions, "LIVE")
	must(owner, carol, member, rooms.AllPermissions)
	must(owner, carol, member, ban)
}

// TestLiveRevocations: the rpcs that end a member's live access tell the
// live system (OnLiveRevoked) on their node, and so does a change made on
// another node as it is delivered (Deliver, remote) — checked against the
// membership then, so a change delivered after the member was let back
// in revokes nothing.
func TestLiveRevocations(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t)
	var mu sync.Mutex
	var got []rooms.LiveRevocation
	e.svc.OnLiveRevoked(func(rv rooms.LiveRevocation) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, rv)
	}, nil) // nil: every delivered change is checked against the membership
	want := func(step string, w ...rooms.LiveRevocation) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if len(got) != len(w) {
			t.Fatalf("%s: revocations %+v; want %+v", step, got, w)
		}
		for i := range w {
			if got[i] != w[i] {
				t.Fatalf("%s: revocations %+v; want %+v", step, got, w)
			}
		}
		got = nil
	}
	owner, bob := e.register(""), e.register("")
	room := e.createRoom(owner, &clientv1.CreateRoomRequest{})
	e.join(bob, room)
	withLive := rooms.DefaultMemberPermissions | uint64(clientv1.Permission_PERMISSION_LIVE)
	setPerms := func(mask uint64) {
		t.Helper()
		if _, err := e.c.SetMemberPermissions(ctx, as(owner, &clientv1.SetMemberPermissionsRequest{RoomId: room, UserId: bob.id, Permissions: mask})); err != nil {
			t.Fatal(err)
		}
	}
	seq := int64(0)
	deliver := func(remote bool, msg *clientv1.ServerMessage) {
		seq++
		e.svc.Deliver(room, seq, remote, false, msg)
	}
	memberEvent := func(kind clientv1.MemberUpdate_Kind, perms uint64) *clientv1.ServerMessage {
		return &clientv1.ServerMessage{Payload: &clientv1.ServerMessage_Member{Member: &clientv1.MemberUpdate{Kind: kind,
			Member: &clientv1.Member{User: &clientv1.User{Id: bob.id}, Permissions: perms, Status: clientv1.MemberStatus_MEMBER_STATUS_ACTIVE}}}}
	}

	setPerms(withLive)
	want("LIVE granted")
	deliver(true, memberEvent(clientv1.MemberUpdate_KIND_LEFT, 0))
	deliver(true, memberEvent(clientv1.MemberUpdate_KIND_PERMISSIONS_CHANGED, rooms.DefaultMemberPermissions))
	want("remote changes while bob holds LIVE")

	setPerms(rooms.DefaultMemberPermissions)
	want("LIVE taken away", rooms.LiveRevocation{RoomID: room, UserID: bob.id})
	deliver(true, memberEvent(clientv1.MemberUpdate_KIND_PERMISSIONS_CHANGED, rooms.DefaultMemberPermissions))
	deliver(false, memberEvent(clientv1.MemberUpdate_KIND_PERMISSIONS_CHANGED, rooms.DefaultMemberPermissions))
	want("LIVE taken away on another node, and this node's own change delivered",
		rooms.LiveRevocation{RoomID: room, UserID: bob.id})

	if _, err := e.c.BanMember(ctx, as(owner, &clientv1.BanMemberRequest{RoomId: room, UserId: bob.id})); err != nil {
		t.Fatal(err)
	}
	want("ban", rooms.LiveRevocation{RoomID: room, UserID: bob.id, Watch: true})
	deliver(true, memberEvent(clientv1.MemberUpdate_KIND_BANNED, 0))
	want("ban on another node", rooms.LiveRevocation{RoomID: room, UserID: bob.id, Watch: true})

	if _, err := e.c.UnbanMember(ctx, as(owner, &clientv1.UnbanMemberRequest{RoomId: room, UserId: bob.id})); err != nil {
		t.Fatal(err)
	}
	e.join(bob, room)
	if _, err := e.c.LeaveRoom(ctx, as(bob, &clientv1.LeaveRoomRequest{RoomId: room})); err != nil {
		t.Fatal(err)
	}
	want("leave", rooms.LiveRevocation{RoomID: room, UserID: bob.id, Watch: true})
	deliver(true, memberEvent(clientv1.MemberUpdate_KIND_LEFT, 0))
	want("leave on another node", rooms.LiveRevocation{RoomID: room, UserID: bob.id, Watch: true})

	if _, err := e.c.DeleteRoom(ctx, as(owner, &clientv1.DeleteRoomRequest{RoomId: room})); err != nil {
		t.Fatal(err)
	}
	want("delete", rooms.LiveRevocation{RoomID: room, Watch: true})
	deliver(true, &clientv1.ServerMessage{Payload: &clientv1.ServerMessage_Room{Room: &clientv1.RoomUpdate{Room: &clientv1.Room{Id: room}, Deleted: true}}})
	want("delete on another node", rooms.LiveRevocation{RoomID: room, Watch: true})
}

// TestRateLimitsSurviveReconnect: a member who used up the chat limit and
// reconnects (the old stream gone, not replaced) is still over it; the
// limit refills with time as before.
func TestRateLimitsSurviveReconnect(t *testing.T) {
	t.Parallel()
	clk := &clock{now: time.Now()}
	e := newEnv(t, func(c *rooms.Config) { c.Now = clk.Now })
	owner, bob := e.register(""), e.register("")
	room := e.createRoom(owner, &clientv1.CreateRoomRequest{})
	e.join(bob, room)
	watcher := e.openStream(owner, room, 0)
	watcher.next(isReady)
	sb := e.openStream(bob, room, 0)
	sb.next(isReady)
	// The clock stands still: the burst (10) goes through, the 11th not.
	for i := range 10 {
		sb.send(chatMsg(fmt.Sprint("m", i)))
	}
	sb.send(chatMsg("over"))
	if got := sb.next(isError).GetError().GetCode(); got != apierr.CodeRateLimited {
		t.Fatalf("11th chat: %s; want RATE_LIMITED", got)
	}
	_ = sb.bs.CloseRequest()
	_ = sb.bs.CloseResponse()
	watcher.next(func(m *clientv1.ServerMessage) bool {
		u := m.GetMember()
		return u.GetKind() == clientv1.MemberUpdate_KIND_OFFLINE && u.GetMember().GetUser().GetId() == bob.id
	})
	again := e.openStream(bob, room, 0)
	again.next(isReady)
	again.send(chatMsg("after reconnect"))
	// The retained chat is replayed first; the answer is an error or the
	// message itself.
	m := again.next(func(m *clientv1.ServerMessage) bool {
		return isError(m) || m.GetChat().GetContent() == "after reconnect"
	})
	if got := m.GetError().GetCode(); got != apierr.CodeRateLimited {
		t.Fatalf("chat after reconnecting: %v; want RATE_LIMITED", m)
	}
	clk.advance(time.Second)
	again.send(chatMsg("a second later"))
	if got := again.next(isChat).GetChat().GetContent(); got != "a second later" {
		t.Fatalf("chat a second later: %q", got)
	}
}

// TestGuestEvasion: a guest has no account, so a muted or banned one
// could come back at once as a new guest. A new guest from the address of
// a muted one gets no permission the mute took (and passes nothing on:
// lifting the mute frees the next guests); a banned one keeps every guest
// from the address out (until unbanned), before the password is tried and
// with nothing stored; a registered user from the same address is never
// held back.
func TestGuestEvasion(t *testing.T) {
	t.Parallel()
	st := storetest.SQLite(t)
	e := newEnvOn(t, st)
	ctx := ctxT(t)
	owner := e.register("")
	room := e.createRoom(owner, &clientv1.CreateRoomRequest{Password: "pw", Settings: &clientv1.RoomSettings{AllowGuests: true}})
	guests := func() int {
		ms, err := st.Rooms().ListMembers(ctx, room, int(clientv1.MemberStatus_MEMBER_STATUS_ACTIVE), nil, 100)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, m := range ms {
			if m.Guest {
				n++
			}
		}
		return n
	}
	guestJoin := func(name, password string) (player, *clientv1.Member, error) {
		g, err := e.c.GuestJoin(ctx, connect.NewRequest(&clientv1.GuestJoinRequest{RoomId: room, Name: name, Password: password}))
		if err != nil {
			return player{}, nil, err
		}
		return player{id: g.Msg.GetUser().GetId(), token: g.Msg.GetAccessToken()}, g.Msg.GetMember(), nil
	}
	setPerms := func(id string, perms uint64) {
		t.Helper()
		if _, err := e.c.SetMemberPermissions(ctx, as(owner, &clientv1.SetMemberPermissionsRequest{RoomId: room, UserId: id, Permissions: perms})); err != nil {
			t.Fatal(err)
		}
	}
	chat := uint64(clientv1.Permission_PERMISSION_CHAT)
	g1, m1, err := guestJoin("troll", "pw")
	if err != nil {
		t.Fatal(err)
	}
	defaults := m1.GetPermissions()
	if defaults&chat == 0 {
		t.Fatalf("a first guest's permissions %b lack CHAT", defaults)
	}
	setPerms(g1.id, defaults&^chat) // muted
	_, m2, err := guestJoin("troll-again", "pw")
	if err != nil {
		t.Fatal(err)
	}
	if m2.GetPermissions() != defaults&^chat {
		t.Fatalf("a new guest from a muted guest's address got permissions %b; want %b (no CHAT)", m2.GetPermissions(), defaults&^chat)
	}
	setPerms(g1.id, defaults) // unmuted: troll-again's inherited mute is not passed on
	if _, m3, err := guestJoin("after-unmute", "pw"); err != nil || m3.GetPermissions() != defaults {
		t.Fatalf("a guest after the unmute: %v, permissions %b; want %b", err, m3.GetPermissions(), defaults)
	}

	// Banned: guests from the address are refused before their password
	// is tried (a wrong one is not even counted), and leave nothing.
	if _, err := e.c.BanMember(ctx, as(owner, &clientv1.BanMemberRequest{RoomId: room, UserId: g1.id})); err != nil {
		t.Fatal(err)
	}
	for range 6 {
		_, _, err = guestJoin("troll-3", "wrong")
		wantCode(t, err, connect.CodePermissionDenied, apierr.CodeMemberBanned)
	}
	if n := guests(); n != 2 {
		t.Fatalf("%d active guests after the refusals; want the 2 admitted and not banned", n)
	}
	// A registered user at the same address (every test client is
	// 127.0.0.1) joins.
	if _, err := e.c.JoinRoom(ctx, as(e.register(""), &clientv1.JoinRoomRequest{RoomId: room, Password: "pw"})); err != nil {
		t.Fatalf("a registered user at a banned guest's address: %v", err)
	}
	// Unbanned: guests from the address are let in again, and the wrong
	// passwords tried while banned were never counted.
	if _, err := e.c.UnbanMember(ctx, as(owner, &clientv1.UnbanMemberRequest{RoomId: room, UserId: g1.id})); err != nil {
		t.Fatal(err)
	}
	if _, _, err := guestJoin("troll-4", "pw"); err != nil {
		t.Fatalf("guest after the unban: %v", err)
	}
}

// TestControlRateLimit: playback and playlist changes are limited per
// user and room, over rpcs and the stream alike (the same bucket): each is
// a database write announced to every member. Over the limit an rpc is
// RESOURCE_EXHAUSTED and a stream gets RATE_LIMITED and goes on; another
// member is not affected, and the limit refills with time.
func TestControlRateLimit(t *testing.T) {
	t.Parallel()
	clk := &clock{now: time.Now()}
	e := newEnv(t, func(c *rooms.Config) { c.Now, c.ControlPerSecond = clk.Now, 3 })
	owner, bob := e.register(""), e.register("")
	room := e.createRoom(owner, &clientv1.CreateRoomRequest{Settings: &clientv1.RoomSettings{
		DefaultPermissions: uint64(clientv1.Permission_PERMISSION_CHAT | clientv1.Permission_PERMISSION_CONTROL_PLAYBACK | clientv1.Permission_PERMISSION_ADD_MOVIE)}})
	e.join(bob, room)
	e.withMovie(owner, room) // two of the owner's three
	ctx := ctxT(t)
	// The clock stands still: bob's burst (3) goes through, then no more.
	if _, err := e.c.Seek(ctx, as(bob, &clientv1.SeekRequest{RoomId: room, Position: 1})); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.AddMovie(ctx, as(bob, &clientv1.AddMovieRequest{RoomId: room, Url: "https://example.com/b.mp4"})); err != nil {
		t.Fatal(err)
	}
	sb := e.openStream(bob, room, 0)
	sb.next(isReady)
	sb.send(&clientv1.ClientMessage{Payload: &clientv1.ClientMessage_Seek{Seek: &clientv1.SeekMessage{Position: 2}}})
	sb.next(func(m *clientv1.ServerMessage) bool { return m.GetRoomState().GetState().GetPosition() == 2 })
	sb.send(&clientv1.ClientMessage{Payload: &clientv1.ClientMessage_Seek{Seek: &clientv1.SeekMessage{Position: 3}}})
	if got := sb.next(isError).GetError(); got.GetCode() != apierr.CodeRateLimited {
		t.Fatalf("4th change, on the stream: %v; want RATE_LIMITED", got)
	}
	sb.send(chatMsg("still here")) // the stream goes on
	sb.next(func(m *clientv1.ServerMessage) bool { return m.GetChat().GetContent() == "still here" })
	_, err := e.c.Pause(ctx, as(bob, &clientv1.PauseRequest{RoomId: room}))
	wantCode(t, err, connect.CodeResourceExhausted, apierr.CodeRateLimited)
	_, err = e.c.AddMovie(ctx, as(bob, &clientv1.AddMovieRequest{RoomId: room, Url: "https://example.com/c.mp4"}))
	wantCode(t, err, connect.CodeResourceExhausted, apierr.CodeRateLimited)
	// The owner has one change left.
	if _, err := e.c.Seek(ctx, as(owner, &clientv1.SeekRequest{RoomId: room, Position: 9})); err != nil {
		t.Fatalf("the owner's seek: %v", err)
	}
	clk.advance(time.Second)
	if _, err := e.c.Pause(ctx, as(bob, &clientv1.PauseRequest{RoomId: room})); err != nil {
		t.Fatalf("bob's pause a second later: %v", err)
	}
}

// TestSignupLimit: one address creates at most a burst of users (accounts
// and guests alike) and then SignupsPerMinute; refused before the password
// is hashed. The limit refills with time.
func TestSignupLimit(t *testing.T) {
	t.Parallel()
	clk := &clock{now: time.Now()}
	e := newEnv(t, func(c *rooms.Config) { c.Now, c.SignupsPerMinute, c.SignupBurst = clk.Now, 6, 3 })
	ctx := ctxT(t)
	owner := e.register("") // 1
	room := e.createRoom(owner, &clientv1.CreateRoomRequest{Settings: &clientv1.RoomSettings{AllowGuests: true}})
	e.register("") // 2
	if _, err := e.c.GuestJoin(ctx, connect.NewRequest(&clientv1.GuestJoinRequest{RoomId: room, Name: "visitor"})); err != nil {
		t.Fatal(err) // 3
	}
	_, err := e.c.Register(ctx, connect.NewRequest(&clientv1.RegisterRequest{Username: "one-too-many", Password: "correct-horse-battery"}))
	wantCode(t, err, connect.CodeResourceExhausted, apierr.CodeRateLimited)
	_, err = e.c.GuestJoin(ctx, connect.NewRequest(&clientv1.GuestJoinRequest{RoomId: room, Name: "visitor2"}))
	wantCode(t, err, connect.CodeResourceExhausted, apierr.CodeRateLimited)
	// Nothing was stored for the refused ones: the name is free.
	clk.advance(10 * time.Second) // 6 a minute: one token
	if _, err := e.c.Register(ctx, connect.NewRequest(&clientv1.RegisterRequest{Username: "one-too-many", Password: "correct-horse-battery"})); err != nil {
		t.Fatalf("register 10 s later: %v", err)
	}
	// Logging in is not signing up.
	if _, err := e.c.Login(ctx, connect.NewRequest(&clientv1.LoginRequest{Username: "one-too-many", Password: "correct-horse-battery"})); err != nil {
		t.Fatalf("login: %v", err)
	}
}

// TestStalledStreamIsCutOff: a member's client that stops reading its
// MessageStream (here an HTTP/2 client with a 16 KiB stream window) blocks
// the server's sends once its window is full; after WriteTimeout the
// stream is cut off and leaves the room (OFFLINE to the others), instead
// of holding its goroutine and looking online for ever.
func TestStalledStreamIsCutOff(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, storetest.SQLite(t), roomsrpc.Options{WriteTimeout: 300 * time.Millisecond},
		func(c *rooms.Config) { c.ChatPerSecond = 1000 })
	owner, bob := e.register(""), e.register("")
	room := e.createRoom(owner, &clientv1.CreateRoomRequest{})
	e.join(bob, room)
	watcher := e.openStream(owner, room, 0)
	watcher.next(isReady)

	tr := &http.Transport{HTTP2: &http.HTTP2Config{MaxReceiveBufferPerStream: 16 << 10}}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bs := clientv1connect.NewClientServiceClient(&http.Client{Transport: tr}, e.url, connect.WithGRPC()).MessageStream(ctx)
	bs.RequestHeader().Set("Authorization", "Bearer "+bob.token)
	if err := bs.Send(&clientv1.ClientMessage{Payload: &clientv1.ClientMessage_Hello{Hello: &clientv1.StreamHello{RoomId: room}}}); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ { // the room's state, then ready
		m, err := bs.Receive()
		if err != nil || i == 10 {
			t.Fatalf("bob's stream: no ready (%v)", err)
		}
		if m.GetReady() != nil {
			break
		}
	}
	watcher.next(func(m *clientv1.ServerMessage) bool {
		return m.GetMember().GetKind() == clientv1.MemberUpdate_KIND_ONLINE && m.GetMember().GetMember().GetUser().GetId() == bob.id
	})
	// Bob reads nothing more; 64 chats of 1,500 bytes (~100 KiB) overflow
	// his window, not his stream's queue (1,024 messages).
	text := strings.Repeat("x", 1500)
	for range 64 {
		watcher.send(chatMsg(text))
	}
	watcher.next(func(m *clientv1.ServerMessage) bool {
		return m.GetMember().GetKind() == clientv1.MemberUpdate_KIND_OFFLINE && m.GetMember().GetMember().GetUser().GetId() == bob.id
	})
}
