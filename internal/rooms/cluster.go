package rooms

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/ratelimit"
	"github.com/croupier/croupier/internal/store"
	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/codes"
)

// Bus orders room events across the gateway nodes of a cluster
// (internal/roomcluster puts them in a NATS JetStream stream). With a Bus,
// an event is not delivered where it happens: it is appended to the
// room's log, and every node, this one included, delivers the log in its
// order through Service.Deliver. So members on every node see one order,
// and a room's seq is its position in the log.
type Bus interface {
	// Publish appends msg to the room's log and returns its seq. It is
	// called with the room's lock held and must return within a bounded
	// time; an error means the event was not published.
	Publish(ctx context.Context, roomID string, msg *clientv1.ServerMessage) (int64, error)
	// Head is the seq of the room's latest event in the log (0: none).
	Head(ctx context.Context, roomID string) (int64, error)
	// Check fails when events cannot be published now (the node lost the
	// bus): playback changes are then refused rather than diverge.
	Check() error
	// Online records that this node now has count streams open in the
	// room. It is called with the room's lock held and must not block.
	Online(roomID string, count int)
	// OnlineElsewhere is the number of streams open in the room on the
	// cluster's other nodes, as last seen.
	OnlineElsewhere(roomID string) int
}

// errNoBus is what a node that cannot reach the cluster's bus answers to a
// change it could not announce.
func errNoBus(err error) error {
	return apierr.New(codes.Unavailable, apierr.CodeUnavailable,
		"this node cannot reach the cluster's event bus ("+err.Error()+"); retry, or reconnect to another node")
}

// Deliver applies one event of the cluster's log: the bus calls it from
// one goroutine, in log order, for every room event, those published by
// this node included (remote says it came from another node; more, that
// the log held later events when this one was handed over). An event at
// or below the room's seq was applied already and is dropped, so a bus
// that redelivers after a reconnect never applies an event twice. Events
// of rooms that are not live here are dropped: a room loads its state
// from the database and the log's head.
//
// A permission change is applied as the database holds the membership
// when it is delivered (read before the room's lock is taken), not as the
// event carries it: two changes made on two nodes may commit in one order
// and reach the log in the other, and the last one delivered is read after
// both committed, so every node ends with what the database holds.
func (s *Service) Deliver(roomID string, seq int64, remote, more bool, msg *clientv1.ServerMessage) {
	if u := msg.GetMember(); u.GetKind() == clientv1.MemberUpdate_KIND_PERMISSIONS_CHANGED && s.hub.isLive(roomID) {
		s.freshMember(roomID, u)
	}
	if up := msg.GetPlaylist(); up != nil {
		s.playlistNews(roomID, seq, more, up)
	}
	if remote {
		// The node that made the change ended its own live streams; this
		// node's end here, whether or not the room is loaded (a publisher
		// does not load it).
		s.revokeRemote(roomID, msg)
	}
	s.hub.ifLive(roomID, func(r *liveRoom) {
		if seq <= r.seq {
			return
		}
		r.seq = seq
		msg.Seq = seq
		switch p := msg.Payload.(type) {
		case *clientv1.ServerMessage_RoomState:
			if st := p.RoomState.GetState(); st.GetVersion() > r.state.Version {
				r.state = store.PlaybackState{MovieID: st.GetMovieId(), Playing: st.GetPlaying(), Position: st.GetPosition(),
					Rate: st.GetRate(), UpdatedAt: time.UnixMilli(st.GetUpdatedAt()), Version: st.GetVersion(), UpdatedBy: st.GetUpdatedBy()}
				if st.GetMovie() != nil {
					r.movie = st.GetMovie()
				}
			}
		case *clientv1.ServerMessage_Member:
			if p.Member.GetKind() == clientv1.MemberUpdate_KIND_PERMISSIONS_CHANGED {
				// Also this node's own change: another node's may have been
				// committed after it and logged before it.
				if st := r.subs[p.Member.GetMember().GetUser().GetId()]; st != nil {
					m := p.Member.GetMember()
					st.member.Role, st.member.Permissions, st.member.Status = int(m.GetRole()), m.GetPermissions(), int(m.GetStatus())
				}
			} else if remote {
				s.remoteMember(r, seq, p.Member)
			}
		case *clientv1.ServerMessage_Room:
			if p.Room.GetDeleted() {
				// Deleted through another node (the deleting node closed
				// its own streams and marked the room gone already).
				s.hub.closeDeleted(r, outgoing(msg))
				return
			}
		}
		s.hub.fanout(r, msg)
	})
}

// remoteMember applies, to this node's streams, a membership change made
// on another node. r.mu held.
func (s *Service) remoteMember(r *liveRoom, seq int64, u *clientv1.MemberUpdate) {
	uid := u.GetMember().GetUser().GetId()
	st := r.subs[uid]
	if st == nil {
		return
	}
	switch u.GetKind() {
	case clientv1.MemberUpdate_KIND_ONLINE:
		// One session per user per room across the cluster: the later
		// stream (in log order) wins.
		if st.openSeq < seq {
			r.kick(uid, errorMessage(apierr.New(codes.Aborted, apierr.CodeStreamReplaced,
				"another stream of the same user opened in this room on another node; this one is closed"), ""))
		}
	case clientv1.MemberUpdate_KIND_LEFT:
		r.kick(uid, errorMessage(apierr.New(codes.FailedPrecondition, apierr.CodeNotMember, "you left the room"), ""))
	case clientv1.MemberUpdate_KIND_BANNED:
		r.kick(uid, errorMessage(apierr.New(codes.PermissionDenied, apierr.CodeMemberBanned, "you were banned from room "+r.id), ""))
	}
}

// freshMember sets the membership a permission change carries to what
// the database holds now (see Deliver); on a read error the event's is
// kept. It runs on the delivery goroutine, outside the room's lock.
func (s *Service) freshMember(roomID string, u *clientv1.MemberUpdate) {
	ctx, cancel := context.WithTimeout(context.Background(), freshMemberTimeout)
	defer cancel()
	m, err := s.st.Member(ctx, roomID, u.GetMember().GetUser().GetId())
	if err != nil {
		s.log.Warn("membership not read for a permission change; the event's is applied", "room", roomID,
			"user", u.GetMember().GetUser().GetId(), "err", err)
		return
	}
	if m.Status == memberLeft {
		return // left since: the stream is gone, and the status is not sent
	}
	u.Member = memberProto(m, u.GetMember().GetOnline())
}

// freshMemberTimeout bounds the database read of a delivered permission
// or playlist change (the node's deliveries wait on it).
const freshMemberTimeout = 2 * time.Second

// fanout records msg in the room (chat is retained) and queues it to
// every stream of the room. r.mu held.
func (h *hub) fanout(r *liveRoom, m *clientv1.ServerMessage) {
	msg := outgoing(m)
	if _, ok := m.Payload.(*clientv1.ServerMessage_Chat); ok {
		if len(r.chat) == chatKeep {
			copy(r.chat, r.chat[1:])
			r.chat = r.chat[:chatKeep-1]
		}
		r.chat = append(r.chat, msg)
	}
	n := 0
	for uid, s := range r.subs {
		if s.enqueue(msg) {
			n++
		} else {
			delete(r.subs, uid)
		}
	}
	h.svc.m.deliveries.Add(float64(n))
}

// SetPlayback sets a room's playback state for another node of the
// cluster (DataSyncService.SyncRoomState, or a PlaybackEvent sent through
// SyncEvents by a node written against the seed): the node acts with the
// room's full authority (it holds a client certificate of the cluster's
// CA), version is the state's version the change is based on (0: last
// writer wins; else a stale version is refused with
// PLAYBACK_VERSION_MISMATCH, as a member's change is), and the result is
// announced to every member like a member's change.
func (s *Service) SetPlayback(ctx context.Context, roomID, movieID string, playing bool, position, rate float64, version int64) (*clientv1.RoomState, error) {
	if err := checkRoomID(roomID); err != nil {
		return nil, err
	}
	if err := checkPosition(position); err != nil {
		return nil, err
	}
	if rate == 0 {
		rate = 1
	}
	if err := checkRate(rate); err != nil {
		return nil, err
	}
	if version < 0 {
		return nil, invalid("version must be >= 0")
	}
	r, err := s.hub.acquire(ctx, roomID)
	if err != nil {
		return nil, err
	}
	defer s.hub.release(r)
	var movie *clientv1.Movie
	if movieID != "" && movieID != r.stateProto().GetMovieId() {
		mv, err := s.st.Movie(ctx, roomID, movieID)
		if errors.Is(err, store.ErrNotFound) {
			return nil, apierr.New(codes.NotFound, apierr.CodeMovieNotFound, "movie "+movieID+" is not in room "+roomID+"'s playlist")
		}
		if err != nil {
			return nil, toStatus(ctx, s.log, err)
		}
		movie = movieProto(mv)
	}
	system := func() store.RoomMember {
		return store.RoomMember{RoomID: roomID, Role: int(clientv1.MemberRole_MEMBER_ROLE_CREATOR)}
	}
	return s.changePlayback(ctx, r, clientv1.Permission_PERMISSION_CONTROL_PLAYBACK, system, version, movie,
		func(_ time.Time, cur store.PlaybackState) (store.PlaybackState, error) {
			next := cur
			next.Playing, next.Position, next.Rate = playing, position, rate
			return next, nil
		})
}

// RemoteChat posts a chat message that a node written against the seed
// sent through SyncEvents for one of its users. The user is who the
// message is from, so it gets what a member's stream gets: the user must
// be an active member with PERMISSION_CHAT, the content has the same
// limits, the user's chat rate in the room applies (the one their stream
// here uses too), and the message is published
// and stored like a stream's (same order, in the history). eventID is
// the message id: an event sent twice is published once (the log drops
// the copy) and stored once.
func (s *Service) RemoteChat(ctx context.Context, roomID, eventID, userID, content string) error {
	if err := checkRoomID(roomID); err != nil {
		return err
	}
	if err := checkUserID("user_id", userID); err != nil {
		return err
	}
	if len(eventID) > maxMessageID {
		return tooLong("event_id", maxMessageID, "bytes")
	}
	content, err := checkText("chat content", content, maxChatBytes)
	if err != nil {
		return err
	}
	m, err := s.activeMember(ctx, Caller{UserID: userID}, roomID)
	if err != nil {
		return err
	}
	r, err := s.hub.acquire(ctx, roomID)
	if err != nil {
		return err
	}
	defer s.hub.release(r)
	msg := &clientv1.ServerMessage{MessageId: eventID, Payload: &clientv1.ServerMessage_Chat{Chat: &clientv1.ChatBroadcast{
		MessageId: eventID, User: &clientv1.User{Id: userID, Username: m.Username, Guest: m.Guest}, Content: content}}}
	r.mu.Lock()
	if r.gone {
		r.mu.Unlock()
		return apierr.New(codes.NotFound, apierr.CodeRoomDeleted, "room "+r.id+" was deleted")
	}
	if st := r.subs[userID]; st != nil {
		m = st.member // kept current by every membership change
	}
	if effective(m)&uint64(clientv1.Permission_PERMISSION_CHAT) == 0 {
		r.mu.Unlock()
		return missing(clientv1.Permission_PERMISSION_CHAT, r.id)
	}
	if err := s.rateLimit(r.id, userID, limitChat); err != nil {
		r.mu.Unlock()
		return err
	}
	err = s.hub.publish(ctx, r, msg)
	r.mu.Unlock()
	if err != nil {
		return err
	}
	s.chat.add(ctx, store.ChatMessage{RoomID: r.id, Seq: msg.Seq, MessageID: msg.MessageId, UserID: userID,
		Username: m.Username, Guest: m.Guest, Content: content, SentAt: time.UnixMilli(msg.Timestamp)})
	return nil
}

// RoomsByID returns the rooms that exist among ids, for the cluster's
// DataSyncService.BatchGetRooms.
func (s *Service) RoomsByID(ctx context.Context, ids []string) ([]*clientv1.Room, error) {
	out := make([]*clientv1.Room, 0, len(ids))
	for _, id := range ids {
		if err := checkRoomID(id); err != nil {
			return nil, err
		}
		r, err := s.st.Room(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, toStatus(ctx, s.log, err)
		}
		out = append(out, s.roomProto(r))
	}
	return out, nil
}

// ShareThrottles makes the player login throttle and the room password
// throttle count the failures of every gateway node on nc (the gateway
// tier's NATS; ratelimit.LoginThrottle.Share, subjects
// SubjectPlayerLogins and SubjectRoomPasswords), so that guesses spread
// over nodes add up. node is this node's id. Call it once, before serving.
func (s *Service) ShareThrottles(nc *nats.Conn, node string) error {
	if err := s.cred.Logins.Share(nc, ratelimit.SubjectPlayerLogins, node, s.log); err != nil {
		return fmt.Errorf("rooms: share the login throttle: %w", err)
	}
	if err := s.roomPasswords.Share(nc, ratelimit.SubjectRoomPasswords, node, s.log); err != nil {
		return fmt.Errorf("rooms: share the room password throttle: %w", err)
	}
	return nil
}
