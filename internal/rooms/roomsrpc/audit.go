package roomsrpc

import (
	"context"
	"encoding/json"
	"time"

	"connectrpc.com/connect"
	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"github.com/croupier/croupier/api/synctv/client/v1/clientv1connect"
	"github.com/croupier/croupier/internal/audit"
	"github.com/croupier/croupier/internal/rooms"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Audit actions of room writes: the changes of a room's settings, members'
// standing and secrets, in the operators' audit trail. Player actions
// (chat, playback, playlist, joining, leaving) are not audited.
const (
	ActionRoomCreate        = "room.create"
	ActionRoomDelete        = "room.delete"
	ActionRoomSettings      = "room.settings"
	ActionMemberApprove     = "room.member.approve"
	ActionMemberBan         = "room.member.ban"
	ActionMemberUnban       = "room.member.unban"
	ActionMemberPermissions = "room.member.permissions"
	ActionStreamKeyCreate   = "room.stream_key.create"
	ActionStreamKeyRotate   = "room.stream_key.rotate"
	ActionStreamKeyRevoke   = "room.stream_key.revoke"
)

// maxAuditedRequest is the largest request whose body an audit row keeps.
const maxAuditedRequest = 16 << 10

// audited maps the procedures whose calls are audited to their action.
var audited = map[string]string{
	clientv1connect.ClientServiceCreateRoomProcedure:           ActionRoomCreate,
	clientv1connect.ClientServiceDeleteRoomProcedure:           ActionRoomDelete,
	clientv1connect.ClientServiceUpdateRoomSettingsProcedure:   ActionRoomSettings,
	clientv1connect.ClientServiceApproveMemberProcedure:        ActionMemberApprove,
	clientv1connect.ClientServiceBanMemberProcedure:            ActionMemberBan,
	clientv1connect.ClientServiceUnbanMemberProcedure:          ActionMemberUnban,
	clientv1connect.ClientServiceSetMemberPermissionsProcedure: ActionMemberPermissions,
	clientv1connect.ClientServiceCreateStreamKeyProcedure:      ActionStreamKeyCreate,
	clientv1connect.ClientServiceRotateStreamKeyProcedure:      ActionStreamKeyRotate,
	clientv1connect.ClientServiceRevokeStreamKeyProcedure:      ActionStreamKeyRevoke,
}

// actor names a player in the audit trail: "player:<username>", or
// "guest:<user id>" (guests' names are not unique).
func actor(c rooms.Caller) string {
	if c.Guest {
		return "guest:" + c.UserID
	}
	return "player:" + c.Username
}

// record writes the audit row of an audited call: who, what (the request,
// its password masked, and the room), and the outcome. The call's result
// stands whatever happens here: the change is made by then, so a row that
// cannot be written is logged instead.
func (a *authInterceptor) record(ctx context.Context, c rooms.Caller, action string, req connect.AnyRequest,
	resp connect.AnyResponse, err error, took time.Duration) {
	if a.audit == nil || (err != nil && !a.refusals.Allow()) {
		return // refusals beyond the limiter's rate: any player can make them
	}
	// {"room_id": …, "request": {…}}: the room named at the top, also for
	// CreateRoom, whose request has no id yet.
	payload := map[string]any{}
	if m, ok := req.Any().(proto.Message); ok {
		if n := proto.Size(m); n > maxAuditedRequest {
			payload["request_bytes"] = n // a room write is small; a huge one is named, not copied
		} else if b, merr := protojson.Marshal(m); merr == nil {
			payload["request"] = json.RawMessage(b)
		}
	}
	if r, ok := req.Any().(interface{ GetRoomId() string }); ok && r.GetRoomId() != "" {
		payload["room_id"] = r.GetRoomId()
	}
	if err == nil && resp != nil {
		if r, ok := resp.Any().(*clientv1.CreateRoomResponse); ok {
			payload["room_id"] = r.GetRoom().GetId()
		}
	}
	e := audit.Entry{Actor: actor(c), Action: action, Payload: payload, SensitiveFields: []string{"/request/password"},
		Err: err, Duration: took}
	if rerr := a.audit.Record(context.WithoutCancel(ctx), e); rerr != nil {
		a.log.Error("room write not audited", "action", action, "actor", e.Actor, "room", payload["room_id"], "err", rerr)
	}
}
