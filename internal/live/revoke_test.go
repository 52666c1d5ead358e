package live_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"github.com/croupier/croupier/internal/live"
	"github.com/croupier/croupier/internal/rooms"
)

// TestRevokedHolderCutOff: a member's stream key publishes only while they
// are an active member holding LIVE. Losing LIVE, a ban and leaving each
// cut off their running publisher (as a key rotation does) and refuse the
// key from then on, with its own audited reason.
func TestRevokedHolderCutOff(t *testing.T) {
	w := newWorld(t)
	a := w.newNode("a", 4)
	ctx := context.Background()
	member, err := w.svc.Authenticate(ctx, w.member)
	if err != nil {
		t.Fatal(err)
	}
	setPerms := func(mask uint64) {
		t.Helper()
		if _, err := w.svc.SetMemberPermissions(ctx, w.hostCaller, &clientv1.SetMemberPermissionsRequest{
			RoomId: w.room, UserId: member.UserID, Permissions: mask}); err != nil {
			t.Fatal(err)
		}
	}
	withLive := rooms.DefaultMemberPermissions | uint64(clientv1.Permission_PERMISSION_LIVE)
	setPerms(withLive)
	k, err := w.svc.CreateStreamKey(ctx, member, &clientv1.CreateStreamKeyRequest{RoomId: w.room, Name: "cam"})
	if err != nil {
		t.Fatal(err)
	}
	key, path := k.GetKey().GetKey(), w.room+"/cam"
	live := func() {
		t.Helper()
		if _, holder, err := w.svc.PublishKey(ctx, w.room, key); err != nil || holder != member.UserID {
			t.Fatalf("PublishKey: holder %q, %v; want %s", holder, err, member.UserID)
		}
		publish(t, a.RTMPAddr(), w.room, key, 60)
		a.waitLive(t, path)
	}
	cutOff := func(what string) {
		t.Helper()
		waitFor(t, 10*time.Second, "the publisher cut off after "+what, func() bool { return !a.HasStream(path) })
		if ev := waitAudit(t, a.audit, "publish cut off"); ev.Reason != "the key's holder may no longer publish (left, banned or without LIVE)" {
			t.Fatalf("after %s: audit %+v", what, ev)
		}
		if _, _, err := w.svc.PublishKey(ctx, w.room, key); !errors.Is(err, rooms.ErrKeyHolderRevoked) {
			t.Fatalf("after %s PublishKey: %v; want ErrKeyHolderRevoked", what, err)
		}
	}

	live()
	setPerms(rooms.DefaultMemberPermissions)
	cutOff("losing LIVE")
	// At the RTMP door too: refused and audited with the reason.
	for len(a.audit) > 0 {
		<-a.audit
	}
	if err := publish(t, a.RTMPAddr(), w.room, key, 5).Wait(); err == nil {
		t.Fatal("ffmpeg published with the key of a member without LIVE")
	}
	if ev := <-a.audit; ev.Action != "publish refused" || ev.Reason != "the key's holder may no longer publish (left, banned or without LIVE)" {
		t.Fatalf("audit %+v", ev)
	}

	setPerms(withLive)
	live()
	if _, err := w.svc.BanMember(ctx, w.hostCaller, &clientv1.BanMemberRequest{RoomId: w.room, UserId: member.UserID}); err != nil {
		t.Fatal(err)
	}
	cutOff("a ban")

	if _, err := w.svc.UnbanMember(ctx, w.hostCaller, &clientv1.UnbanMemberRequest{RoomId: w.room, UserId: member.UserID}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.JoinRoom(ctx, member, &clientv1.JoinRoomRequest{RoomId: w.room}); err != nil {
		t.Fatal(err)
	}
	setPerms(withLive)
	live()
	if _, err := w.svc.LeaveRoom(ctx, member, &clientv1.LeaveRoomRequest{RoomId: w.room}); err != nil {
		t.Fatal(err)
	}
	cutOff("leaving")
}

// TestKeyChangeMissedByTheNode: a publisher is cut off by a rotation, a
// revocation or a ban its node was never told of (made on another node),
// by the node's own key checks, and the cut-off is audited.
func TestKeyChangeMissedByTheNode(t *testing.T) {
	w := newWorld(t)
	b := w.newNode("b", 4)
	w.unhook(b)
	ctx := context.Background()
	cutOff := func(path, what, reason string) {
		t.Helper()
		waitFor(t, 10*time.Second, "the publisher on b cut off after "+what, func() bool { return !b.HasStream(path) })
		if ev := waitAudit(t, b.audit, "publish cut off"); ev.Reason != reason || ev.RoomID+"/"+ev.Stream != path || ev.Remote == "" {
			t.Fatalf("after %s: audit %+v; want %s cut off from its address: %s", what, ev, path, reason)
		}
	}
	const badKey, revoked = "unknown or revoked stream key", "the key's holder may no longer publish (left, banned or without LIVE)"

	path := w.room + "/main"
	publish(t, b.RTMPAddr(), w.room, w.key, 60)
	b.waitLive(t, path)
	r, err := w.svc.RotateStreamKey(ctx, w.hostCaller, &clientv1.RotateStreamKeyRequest{RoomId: w.room, Name: "main"})
	if err != nil {
		t.Fatal(err)
	}
	cutOff(path, "a rotation", badKey)

	publish(t, b.RTMPAddr(), w.room, r.GetKey().GetKey(), 60)
	b.waitLive(t, path)
	if _, err := w.svc.RevokeStreamKey(ctx, w.hostCaller, &clientv1.RevokeStreamKeyRequest{RoomId: w.room, Name: "main"}); err != nil {
		t.Fatal(err)
	}
	cutOff(path, "a revocation", badKey)

	member, key := w.memberStreamKey("cam")
	path = w.room + "/cam"
	publish(t, b.RTMPAddr(), w.room, key, 60)
	b.waitLive(t, path)
	if _, err := w.svc.BanMember(ctx, w.hostCaller, &clientv1.BanMemberRequest{RoomId: w.room, UserId: member.UserID}); err != nil {
		t.Fatal(err)
	}
	cutOff(path, "a ban", revoked)
}

// TestKeyChecksOnAHungDatabase: key checks that cannot be made (the
// database does not answer) keep the stream, and never hold up the renewal
// of its lease: the stream outlives three lease TTLs of hung checks.
func TestKeyChecksOnAHungDatabase(t *testing.T) {
	w := newWorld(t)
	a := w.newNode("a", 4)
	w.unhook(a) // only its checks cut it off
	path := w.room + "/main"
	publish(t, a.RTMPAddr(), w.room, w.key, 60)
	a.waitLive(t, path)
	a.rooms.hung.Store(true)
	for end := time.Now().Add(3 * leaseTTL); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if !a.HasStream(path) {
			t.Fatal("the stream was stopped while its key checks hung")
		}
	}
	a.rooms.hung.Store(false)
	if _, err := w.svc.RotateStreamKey(context.Background(), w.hostCaller, &clientv1.RotateStreamKeyRequest{RoomId: w.room, Name: "main"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the publisher cut off once the checks answer", func() bool { return !a.HasStream(path) })
}

// TestBanBetweenKeyCheckAndRegistration: a ban that lands after the key
// was checked at the door but before the stream registered (its
// revocation finds nothing on the node to cut off) still keeps the
// publisher out: the key is checked again once the stream is registered.
func TestBanBetweenKeyCheckAndRegistration(t *testing.T) {
	w := newWorld(t)
	a := w.newNode("a", 4)
	ctx := context.Background()
	member, key := w.memberStreamKey("cam")
	ban := func() {
		if _, err := w.svc.BanMember(ctx, w.hostCaller, &clientv1.BanMemberRequest{RoomId: w.room, UserId: member.UserID}); err != nil {
			t.Error(err)
		}
	}
	a.rooms.afterKeyCheck.Store(&ban)
	if err := publish(t, a.RTMPAddr(), w.room, key, 5).Wait(); err == nil {
		t.Fatal("ffmpeg published with the key of a member banned before the stream registered")
	}
	if a.HasStream(w.room + "/cam") {
		t.Fatal("the banned member's stream is registered")
	}
	if ev := waitAudit(t, a.audit, "publish refused"); ev.Reason != "the key's holder may no longer publish (left, banned or without LIVE)" || ev.Stream != "cam" {
		t.Fatalf("audit %+v", ev)
	}
}

// memberStreamKey gives the world's member LIVE and a key of the stream
// name; it returns the member and the key.
func (w *world) memberStreamKey(name string) (rooms.Caller, string) {
	t := w.t
	t.Helper()
	ctx := context.Background()
	member, err := w.svc.Authenticate(ctx, w.member)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.SetMemberPermissions(ctx, w.hostCaller, &clientv1.SetMemberPermissionsRequest{RoomId: w.room, UserId: member.UserID,
		Permissions: rooms.DefaultMemberPermissions | uint64(clientv1.Permission_PERMISSION_LIVE)}); err != nil {
		t.Fatal(err)
	}
	k, err := w.svc.CreateStreamKey(ctx, member, &clientv1.CreateStreamKeyRequest{RoomId: w.room, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	return member, k.GetKey().GetKey()
}

// waitAudit returns the next audit event with the action (others are
// skipped), failing the test after 10 s.
func waitAudit(t *testing.T, ch <-chan live.AuditEvent, action string) live.AuditEvent {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-ch:
			if ev.Action == action {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %q audit event within 10 s", action)
		}
	}
}

// watch opens an HTTP-FLV viewer as token's holder and reads it in the
// background; the returned channel closes when the response ends.
func watch(t *testing.T, url string) <-chan struct{} {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("viewer: status %d", resp.StatusCode)
	}
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
	}()
	t.Cleanup(func() {
		cancel()
		<-ended
	})
	return ended
}

func waitEnded(t *testing.T, ended <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s still receives the stream", what)
	}
}

// TestBanEndsViewing: a ban ends the banned member's HTTP-FLV viewing on
// the publisher's node and on a node relaying the stream; other viewers
// go on.
func TestBanEndsViewing(t *testing.T) {
	w := newWorld(t)
	a := w.newNode("a", 4)
	b := w.newNode("b", 4)
	ctx := context.Background()
	member, err := w.svc.Authenticate(ctx, w.member)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, a.RTMPAddr(), w.room, w.key, 60)
	path := w.room + "/main"
	a.waitLive(t, path)
	onA, onB := watch(t, a.playURL(w.room, w.member)), watch(t, b.playURL(w.room, w.member))
	host := watch(t, b.playURL(w.room, w.host))
	// Concerns: what a ban delivered from another node checks before it
	// reads the membership.
	ban := rooms.LiveRevocation{RoomID: w.room, UserID: member.UserID, Watch: true}
	waitFor(t, 10*time.Second, "node b to count the member's viewer", func() bool { return b.Concerns(ban) })
	if b.Concerns(rooms.LiveRevocation{RoomID: w.room, UserID: member.UserID}) {
		t.Fatal("node b, which only relays, would end a publish of the member's")
	}
	if a.Concerns(rooms.LiveRevocation{RoomID: "another-room", UserID: member.UserID, Watch: true}) {
		t.Fatal("node a has a stream of another room")
	}
	if _, err := w.svc.BanMember(ctx, w.hostCaller, &clientv1.BanMemberRequest{RoomId: w.room, UserId: member.UserID}); err != nil {
		t.Fatal(err)
	}
	waitEnded(t, onA, "the banned member's viewer on node a")
	waitEnded(t, onB, "the banned member's viewer on node b")
	waitFor(t, 10*time.Second, "node b to forget the member's viewer", func() bool { return !b.Concerns(ban) })
	select {
	case <-host:
		t.Fatal("the host's viewer ended with the ban of another member")
	default:
	}
	if sb, _ := b.Status(ctx, path); sb.GetStats().GetViewerCount() != 1 {
		t.Fatalf("node b has %d viewers; want 1 (the host)", sb.GetStats().GetViewerCount())
	}
}

// TestDeleteRoomEndsStreams: deleting the room cuts off its publisher and
// ends its viewers, on the publisher's node and on a relaying node.
func TestDeleteRoomEndsStreams(t *testing.T) {
	w := newWorld(t)
	a := w.newNode("a", 4)
	b := w.newNode("b", 4)
	ctx := context.Background()
	publish(t, a.RTMPAddr(), w.room, w.key, 60)
	path := w.room + "/main"
	a.waitLive(t, path)
	onA, onB := watch(t, a.playURL(w.room, w.member)), watch(t, b.playURL(w.room, w.member))
	if _, err := w.svc.DeleteRoom(ctx, w.hostCaller, &clientv1.DeleteRoomRequest{RoomId: w.room}); err != nil {
		t.Fatal(err)
	}
	waitEnded(t, onA, "a viewer on node a")
	waitEnded(t, onB, "a viewer on node b")
	waitFor(t, 10*time.Second, "the stream gone from both nodes", func() bool { return !a.HasStream(path) && !b.HasStream(path) })
}
