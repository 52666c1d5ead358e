package rooms

import (
	"strconv"

	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"github.com/croupier/croupier/internal/store"
)

func movieProto(m store.Movie) *clientv1.Movie {
	return &clientv1.Movie{Id: m.ID, Url: m.URL, Title: m.Title, Type: clientv1.MovieType(m.Type), Position: int32(m.Position),
		AddedBy: m.AddedBy, CreatedAt: m.CreatedAt.UnixMilli()}
}

func stateProto(st store.PlaybackState, movie *clientv1.Movie) *clientv1.RoomState {
	rate := st.Rate
	if rate == 0 {
		rate = 1
	}
	out := &clientv1.RoomState{MovieId: st.MovieID, Playing: st.Playing, Position: st.Position, Rate: rate,
		Version: st.Version, UpdatedBy: st.UpdatedBy}
	if !st.UpdatedAt.IsZero() {
		out.UpdatedAt = st.UpdatedAt.UnixMilli()
	}
	if movie != nil && movie.GetId() == st.MovieID {
		out.Movie = movie
	}
	return out
}

func chatProto(c store.ChatMessage) *clientv1.ServerMessage {
	return &clientv1.ServerMessage{MessageId: c.MessageID, Timestamp: c.SentAt.UnixMilli(), Seq: c.Seq,
		Payload: &clientv1.ServerMessage_Chat{Chat: &clientv1.ChatBroadcast{
			MessageId: c.MessageID, User: &clientv1.User{Id: c.UserID, Username: c.Username, Guest: c.Guest},
			Content: c.Content, SentAt: c.SentAt.UnixMilli()}}}
}

func memberProto(m store.RoomMember, online bool) *clientv1.Member {
	return &clientv1.Member{User: &clientv1.User{Id: m.UserID, Username: m.Username, Guest: m.Guest},
		Role: clientv1.MemberRole(m.Role), Permissions: effective(m), Status: clientv1.MemberStatus(m.Status),
		JoinedAt: m.JoinedAt.UnixMilli(), Online: online}
}

func memberUpdate(kind clientv1.MemberUpdate_Kind, m *clientv1.Member) *clientv1.ServerMessage {
	return &clientv1.ServerMessage{Payload: &clientv1.ServerMessage_Member{Member: &clientv1.MemberUpdate{Kind: kind, Member: m}}}
}

func (s *Service) roomProto(r store.Room) *clientv1.Room {
	return &clientv1.Room{Id: r.ID, Name: r.Name, CreatorId: r.CreatorID, HasPassword: r.PasswordHash != "",
		Settings: &clientv1.RoomSettings{Hidden: r.Hidden, JoinNeedsApproval: r.JoinNeedsApproval, AllowGuests: r.AllowGuests,
			DefaultPermissions: r.DefaultPermissions},
		MemberCount: int32(r.MemberCount), OnlineCount: int32(s.hub.onlineCount(r.ID)), CreatedAt: r.CreatedAt.UnixMilli()}
}

// effective is what a member may do: the creator everything, everyone
// else their bitmask.
func effective(m store.RoomMember) uint64 {
	if m.Role == int(clientv1.MemberRole_MEMBER_ROLE_CREATOR) {
		return AllPermissions
	}
	return m.Permissions
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
