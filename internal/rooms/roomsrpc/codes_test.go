package roomsrpc_test

import (
	"testing"

	"connectrpc.com/connect"
	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"github.com/croupier/croupier/internal/apierr"
)

// TestMemberStatusCodes: a call about a member in the wrong status is
// FAILED_PRECONDITION with the catalog's MEMBER_INVALID_STATUS (not
// INVALID_ARGUMENT, which says the request itself is malformed), and the
// creator's leave is FAILED_PRECONDITION CREATOR_CANNOT_LEAVE.
func TestMemberStatusCodes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t)
	owner := e.register("")
	room := e.createRoom(owner, &clientv1.CreateRoomRequest{Settings: &clientv1.RoomSettings{JoinNeedsApproval: true}})
	bob, carol := e.register(""), e.register("")
	e.join(bob, room)
	e.join(carol, room)
	if _, err := e.c.ApproveMember(ctx, as(owner, &clientv1.ApproveMemberRequest{RoomId: room, UserId: bob.id, Approve: true})); err != nil {
		t.Fatal(err)
	}
	_, err := e.c.ApproveMember(ctx, as(owner, &clientv1.ApproveMemberRequest{RoomId: room, UserId: bob.id, Approve: true}))
	wantCode(t, err, connect.CodeFailedPrecondition, apierr.CodeMemberStatus)
	_, err = e.c.UnbanMember(ctx, as(owner, &clientv1.UnbanMemberRequest{RoomId: room, UserId: bob.id}))
	wantCode(t, err, connect.CodeFailedPrecondition, apierr.CodeMemberStatus)
	_, err = e.c.SetMemberPermissions(ctx, as(owner, &clientv1.SetMemberPermissionsRequest{RoomId: room, UserId: carol.id}))
	wantCode(t, err, connect.CodeFailedPrecondition, apierr.CodeMemberStatus)
	_, err = e.c.LeaveRoom(ctx, as(owner, &clientv1.LeaveRoomRequest{RoomId: room}))
	wantCode(t, err, connect.CodeFailedPrecondition, apierr.CodeCreatorCannotLeave)
}
