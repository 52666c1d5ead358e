package roomsrpc_test

import (
	"testing"

	"connectrpc.com/connect"
	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/rooms"
)

// TestRejoinKeepsRestriction: a member whose CHAT an admin took away
// cannot get it back by leaving and joining again; while away they are no
// member; a member nobody restricted gets the defaults back; and a
// rejected request to join (approval rooms) does not reset it either.
func TestRejoinKeepsRestriction(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t)
	owner := e.register("")
	room := e.createRoom(owner, &clientv1.CreateRoomRequest{})
	bob, carol := e.register(""), e.register("")
	e.join(bob, room)
	e.join(carol, room)
	chat := uint64(clientv1.Permission_PERMISSION_CHAT)
	muted := rooms.DefaultMemberPermissions &^ chat
	if _, err := e.c.SetMemberPermissions(ctx, as(owner, &clientv1.SetMemberPermissionsRequest{RoomId: room, UserId: bob.id, Permissions: muted})); err != nil {
		t.Fatal(err)
	}
	for _, p := range []player{bob, carol} {
		if _, err := e.c.LeaveRoom(ctx, as(p, &clientv1.LeaveRoomRequest{RoomId: room})); err != nil {
			t.Fatal(err)
		}
	}
	_, err := e.c.GetMovieList(ctx, as(bob, &clientv1.GetMovieListRequest{RoomId: room}))
	wantCode(t, err, connect.CodePermissionDenied, apierr.CodeNotMember)
	info, err := e.c.GetRoomInfo(ctx, as(bob, &clientv1.GetRoomInfoRequest{RoomId: room}))
	if err != nil || info.Msg.GetMember() != nil || info.Msg.GetRoom().GetMemberCount() != 1 {
		t.Fatalf("room info of one who left: %v %v", info, err)
	}
	_, err = e.c.LeaveRoom(ctx, as(bob, &clientv1.LeaveRoomRequest{RoomId: room}))
	wantCode(t, err, connect.CodeFailedPrecondition, apierr.CodeNotMember)

	j, err := e.c.JoinRoom(ctx, as(bob, &clientv1.JoinRoomRequest{RoomId: room}))
	if err != nil {
		t.Fatal(err)
	}
	if got := j.Msg.GetMember().GetPermissions(); got&chat != 0 || got != muted {
		t.Fatalf("bob re-joined with permissions %#x; want %#x (CHAT still taken away)", got, muted)
	}
	s := e.openStream(bob, room, 0)
	s.next(isReady)
	s.send(&clientv1.ClientMessage{MessageId: "c1", Payload: chatMsg("back").Payload})
	if m := s.next(isError); m.GetError().GetRefMessageId() != "c1" || m.GetError().GetCode() != apierr.CodePermissionDenied {
		t.Fatalf("chat after re-join: %v", m)
	}
	j, err = e.c.JoinRoom(ctx, as(carol, &clientv1.JoinRoomRequest{RoomId: room}))
	if err != nil || j.Msg.GetMember().GetPermissions() != rooms.DefaultMemberPermissions {
		t.Fatalf("carol re-joined: %v %v; want the default permissions", j, err)
	}

	// In a room that needs approval, a rejected request keeps it too.
	if _, err := e.c.LeaveRoom(ctx, as(bob, &clientv1.LeaveRoomRequest{RoomId: room})); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.UpdateRoomSettings(ctx, as(owner, &clientv1.UpdateRoomSettingsRequest{RoomId: room,
		Settings: &clientv1.RoomSettings{JoinNeedsApproval: true}})); err != nil {
		t.Fatal(err)
	}
	e.join(bob, room)
	if _, err := e.c.ApproveMember(ctx, as(owner, &clientv1.ApproveMemberRequest{RoomId: room, UserId: bob.id})); err != nil {
		t.Fatal(err)
	}
	e.join(bob, room)
	a, err := e.c.ApproveMember(ctx, as(owner, &clientv1.ApproveMemberRequest{RoomId: room, UserId: bob.id, Approve: true}))
	if err != nil || a.Msg.GetMember().GetPermissions() != muted {
		t.Fatalf("bob approved: %v %v; want permissions %#x", a, err, muted)
	}
}
