package roomcluster

import (
	"errors"
	"fmt"

	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	clusterv1 "github.com/croupier/croupier/api/synctv/cluster/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// maxEventBytes bounds one encoded ClusterEvent (a chat message is at most
// a few KiB).
const maxEventBytes = 64 << 10

// maxIDLen bounds node, room, user and event ids.
const maxIDLen = 64

// checkID accepts ids that are also valid NATS subject tokens and KV keys.
func checkID(what, id string) error {
	if id == "" {
		return fmt.Errorf("%s is empty", what)
	}
	if len(id) > maxIDLen {
		return fmt.Errorf("%s is %d bytes, more than %d", what, len(id), maxIDLen)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("%s %q: only letters, digits, '-' and '_' are allowed", what, id)
		}
	}
	return nil
}

func subject(roomID string) string { return subjectPrefix + roomID }

// toEvent wraps a room event in the seed's ClusterEvent: the payload kind
// the seed names for it, data carrying the whole message as protojson.
func toEvent(nodeID, roomID string, msg *clientv1.ServerMessage) (*clusterv1.ClusterEvent, error) {
	data, err := protojson.Marshal(msg)
	if err != nil {
		return nil, err
	}
	ev := &clusterv1.ClusterEvent{EventId: msg.GetMessageId(), NodeId: nodeID, Timestamp: msg.GetTimestamp()}
	switch p := msg.Payload.(type) {
	case *clientv1.ServerMessage_RoomState:
		// The type is advisory; data holds the whole state.
		ev.Payload = &clusterv1.ClusterEvent_Playback{Playback: &clusterv1.PlaybackEvent{
			Type: clusterv1.PlaybackEvent_SEEK, RoomId: roomID, Data: data}}
	case *clientv1.ServerMessage_Chat:
		ev.Payload = &clusterv1.ClusterEvent_Chat{Chat: &clusterv1.ChatEvent{RoomId: roomID, MessageId: msg.GetMessageId(),
			UserId: p.Chat.GetUser().GetId(), Content: p.Chat.GetContent(), Data: data}}
	case *clientv1.ServerMessage_Member:
		t := clusterv1.MemberEvent_PERMISSIONS_CHANGED
		switch p.Member.GetKind() {
		case clientv1.MemberUpdate_KIND_JOINED, clientv1.MemberUpdate_KIND_ONLINE:
			t = clusterv1.MemberEvent_JOINED
		case clientv1.MemberUpdate_KIND_LEFT, clientv1.MemberUpdate_KIND_OFFLINE, clientv1.MemberUpdate_KIND_BANNED:
			t = clusterv1.MemberEvent_LEFT
		}
		ev.Payload = &clusterv1.ClusterEvent_Member{Member: &clusterv1.MemberEvent{Type: t, RoomId: roomID,
			UserId: p.Member.GetMember().GetUser().GetId(), Data: data}}
	case *clientv1.ServerMessage_Live:
		t := clusterv1.LiveEvent_STARTED
		if p.Live.GetType() == clientv1.LiveEvent_STOPPED {
			t = clusterv1.LiveEvent_STOPPED
		}
		// The seed's LiveEvent has no room id: the subject carries it.
		ev.Payload = &clusterv1.ClusterEvent_Live{Live: &clusterv1.LiveEvent{Type: t, StreamKey: p.Live.GetStreamKey(), Data: data}}
	default: // danmaku, playlist, room settings
		ev.Payload = &clusterv1.ClusterEvent_Room{Room: &clusterv1.RoomEvent{Type: clusterv1.RoomEvent_UPDATED, RoomId: roomID, Data: data}}
	}
	return ev, nil
}

// roomOf is the room an event belongs to ("" for live events, which have
// none).
func roomOf(ev *clusterv1.ClusterEvent) string {
	switch p := ev.Payload.(type) {
	case *clusterv1.ClusterEvent_Room:
		return p.Room.GetRoomId()
	case *clusterv1.ClusterEvent_Playback:
		return p.Playback.GetRoomId()
	case *clusterv1.ClusterEvent_Member:
		return p.Member.GetRoomId()
	case *clusterv1.ClusterEvent_Chat:
		return p.Chat.GetRoomId()
	}
	return ""
}

var errNotApplicable = errors.New("the event carries no message the rooms system can apply")

// fromEvent is the message a room's members get for ev. An event without
// data (one a node written only against the seed sent, of a kind
// SyncEvents does not apply, see receive) cannot be applied.
func fromEvent(ev *clusterv1.ClusterEvent) (*clientv1.ServerMessage, error) {
	var data []byte
	switch p := ev.Payload.(type) {
	case *clusterv1.ClusterEvent_Room:
		data = p.Room.GetData()
	case *clusterv1.ClusterEvent_Playback:
		data = p.Playback.GetData()
	case *clusterv1.ClusterEvent_Member:
		data = p.Member.GetData()
	case *clusterv1.ClusterEvent_Live:
		data = p.Live.GetData()
	case *clusterv1.ClusterEvent_Chat:
		data = p.Chat.GetData()
	}
	if len(data) == 0 {
		return nil, errNotApplicable
	}
	msg := &clientv1.ServerMessage{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, msg); err != nil {
		return nil, fmt.Errorf("event %s: data is not a synctv.client.ServerMessage in JSON: %w", ev.GetEventId(), err)
	}
	if msg.Payload == nil {
		return nil, errNotApplicable
	}
	return msg, nil
}

// stripData empties the data of an event of a kind SyncEvents stores but
// does not apply (room, member, live from another node): the log keeps it
// for other seed nodes, and no node applies what a caller wrote there.
func stripData(ev *clusterv1.ClusterEvent) {
	switch p := ev.Payload.(type) {
	case *clusterv1.ClusterEvent_Room:
		p.Room.Data = nil
	case *clusterv1.ClusterEvent_Playback:
		p.Playback.Data = nil
	case *clusterv1.ClusterEvent_Member:
		p.Member.Data = nil
	case *clusterv1.ClusterEvent_Live:
		p.Live.Data = nil
	case *clusterv1.ClusterEvent_Chat:
		p.Chat.Data = nil
	}
}
