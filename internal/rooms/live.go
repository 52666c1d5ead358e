package rooms

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"regexp"
	"strings"
	"sync"

	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/store"
	"google.golang.org/grpc/codes"
)

// Live streams (docs/live.md): the rooms side of internal/live. A member
// with PERMISSION_LIVE issues a stream's secret publishing key; the RTMP
// ingest checks keys with PublishKey, the HTTP-FLV handler checks viewers
// with AuthorizeViewer, and LiveEvent reaches the room's members over
// MessageStream.

// streamName is a stream's public name.
var streamName = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)

// MaxStreamKeyLen bounds a presented publishing key before it is hashed.
const MaxStreamKeyLen = 128

// liveHooks is where internal/live learns that a key changed (its
// publisher is cut off) or that a member's live access ended. Set once at
// assembly by OnStreamKeyChange and OnLiveRevoked.
type liveHooks struct {
	mu       sync.Mutex
	changed  func(roomID, name string)
	revoked  func(LiveRevocation)
	concerns func(LiveRevocation) bool
	streams  func(roomID string) []*clientv1.LiveEvent
}

// LiveRevocation says whose access to a room's live streams ended, so
// that the live streams running on the strength of it end too.
type LiveRevocation struct {
	RoomID string
	// UserID is the member who may no longer publish: they were banned,
	// left, or lost PERMISSION_LIVE. "" means the room was deleted: every
	// stream of the room ends, its viewers with it.
	UserID string
	// Watch: the member may no longer watch either (banned or left), so
	// their viewers end too; false when only LIVE was taken away.
	Watch bool
}

// OnLiveRevoked registers fn, called after a member is banned, leaves or
// loses PERMISSION_LIVE, and after the room is deleted, on the node that
// made the change and (with a Bus) on every other node as the change is
// delivered. concerns says whether a revocation would end anything on this
// node; a change delivered from another node is checked against the
// membership only when it does (that read would otherwise hold up the
// delivery of every room's events). Neither may block.
func (s *Service) OnLiveRevoked(fn func(LiveRevocation), concerns func(LiveRevocation) bool) {
	s.live.mu.Lock()
	s.live.revoked, s.live.concerns = fn, concerns
	s.live.mu.Unlock()
}

func (s *Service) revokeLive(rv LiveRevocation) {
	s.live.mu.Lock()
	fn := s.live.revoked
	s.live.mu.Unlock()
	if fn != nil {
		fn(rv)
	}
}

// mayPublish says whether m may publish live streams in its room: an
// active member holding PERMISSION_LIVE (the creator holds every bit).
func mayPublish(m store.RoomMember) bool {
	return m.Status == int(clientv1.MemberStatus_MEMBER_STATUS_ACTIVE) &&
		effective(m)&uint64(clientv1.Permission_PERMISSION_LIVE) != 0
}

// revokeRemote ends this node's live streams that a change made on
// another node revoked (Deliver). The membership is read again, as
// freshMember does: an event delivered late, after the member was let
// back in, revokes nothing; on a read error the event's revocation
// stands. It runs on the delivery goroutine, so it reads the membership
// only when this node has a stream the event concerns.
func (s *Service) revokeRemote(roomID string, msg *clientv1.ServerMessage) {
	rv, ok := remoteRevocation(roomID, msg)
	if !ok { // most events: chat, playback, playlist
		return
	}
	s.live.mu.Lock()
	hooked, concerns := s.live.revoked != nil, s.live.concerns
	s.live.mu.Unlock()
	if !hooked || concerns != nil && !concerns(rv) {
		return
	}
	if rv.UserID != "" {
		ctx, cancel := context.WithTimeout(context.Background(), freshMemberTimeout)
		m, err := s.st.Member(ctx, roomID, rv.UserID)
		cancel()
		switch {
		case err == nil && mayPublish(m):
			return
		case err == nil:
			rv.Watch = m.Status != int(clientv1.MemberStatus_MEMBER_STATUS_ACTIVE)
		case errors.Is(err, store.ErrNotFound):
			rv.Watch = true
		default:
			s.log.Warn("membership not read for a live revocation; the event's is applied", "room", roomID, "user", rv.UserID, "err", err)
		}
	}
	s.revokeLive(rv)
}

// remoteRevocation is what a room event made on another node means for
// this node's live streams (see LiveRevocation); ok is false when it
// revokes nothing.
func remoteRevocation(roomID string, msg *clientv1.ServerMessage) (rv LiveRevocation, ok bool) {
	switch p := msg.Payload.(type) {
	case *clientv1.ServerMessage_Member:
		m := p.Member.GetMember()
		uid := m.GetUser().GetId()
		if uid == "" {
			return rv, false
		}
		switch p.Member.GetKind() {
		case clientv1.MemberUpdate_KIND_BANNED, clientv1.MemberUpdate_KIND_LEFT:
			return LiveRevocation{RoomID: roomID, UserID: uid, Watch: true}, true
		case clientv1.MemberUpdate_KIND_PERMISSIONS_CHANGED:
			if m.GetStatus() != clientv1.MemberStatus_MEMBER_STATUS_ACTIVE ||
				m.GetPermissions()&uint64(clientv1.Permission_PERMISSION_LIVE) == 0 {
				return LiveRevocation{RoomID: roomID, UserID: uid}, true
			}
		}
	case *clientv1.ServerMessage_Room:
		if p.Room.GetDeleted() {
			return LiveRevocation{RoomID: roomID, Watch: true}, true
		}
	}
	return rv, false
}

// OnLiveStreams registers fn, which lists the live streams of a room as
// LiveEvent STARTED: a member opening the room's stream gets them after
// ready, so a page opened mid-stream offers it too. fn must not block.
func (s *Service) OnLiveStreams(fn func(roomID string) []*clientv1.LiveEvent) {
	s.live.mu.Lock()
	s.live.streams = fn
	s.live.mu.Unlock()
}

// IsLive reports whether a stream of the room is live (on this node or,
// with the gateway tier, on any node holding a lease).
func (s *Service) IsLive(roomID string) bool { return len(s.liveStreams(roomID)) > 0 }

func (s *Service) liveStreams(roomID string) []*clientv1.LiveEvent {
	s.live.mu.Lock()
	fn := s.live.streams
	s.live.mu.Unlock()
	if fn == nil {
		return nil
	}
	return fn(roomID)
}

// OnStreamKeyChange registers fn, called after a stream's key is rotated
// or revoked so that a publisher on the old key can be cut off.
func (s *Service) OnStreamKeyChange(fn func(roomID, name string)) {
	s.live.mu.Lock()
	s.live.changed = fn
	s.live.mu.Unlock()
}

func (s *Service) keyChanged(roomID, name string) {
	s.live.mu.Lock()
	fn := s.live.changed
	s.live.mu.Unlock()
	if fn != nil {
		fn(roomID, name)
	}
}

func hashStreamKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

func (s *Service) issueStreamKey(ctx context.Context, c Caller, roomID, name string, replace bool) (*clientv1.StreamKey, error) {
	if !streamName.MatchString(name) {
		return nil, invalid("name %q is not a stream name: 1-32 of a-z, 0-9, '_' and '-'", name)
	}
	if _, err := s.need(ctx, c, roomID, clientv1.Permission_PERMISSION_LIVE); err != nil {
		return nil, err
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	key := name + "." + base64.RawURLEncoding.EncodeToString(b[:])
	now := s.now()
	err := s.st.PutStreamKey(ctx, store.StreamKey{RoomID: roomID, Name: name, KeyHash: hashStreamKey(key), CreatedBy: c.UserID, CreatedAt: now}, replace)
	switch {
	case errors.Is(err, store.ErrConflict):
		return nil, apierr.New(codes.AlreadyExists, apierr.CodeStreamKeyExists, "stream "+name+" of room "+roomID+" already has a key; call RotateStreamKey for a new one")
	case errors.Is(err, store.ErrNotFound):
		return nil, streamKeyNotFound(roomID, name)
	case err != nil:
		return nil, toStatus(ctx, s.log, err)
	}
	if replace {
		s.keyChanged(roomID, name)
	}
	return &clientv1.StreamKey{RoomId: roomID, Name: name, Key: key, CreatedAt: now.UnixMilli()}, nil
}

func streamKeyNotFound(roomID, name string) error {
	return apierr.New(codes.NotFound, apierr.CodeStreamKeyNotFound, "room "+roomID+" has no stream key named "+name+"; call CreateStreamKey")
}

// CreateStreamKey issues the first key of a stream (LIVE).
func (s *Service) CreateStreamKey(ctx context.Context, c Caller, req *clientv1.CreateStreamKeyRequest) (*clientv1.CreateStreamKeyResponse, error) {
	k, err := s.issueStreamKey(ctx, c, req.GetRoomId(), req.GetName(), false)
	if err != nil {
		return nil, err
	}
	return &clientv1.CreateStreamKeyResponse{Key: k}, nil
}

// RotateStreamKey replaces a stream's key (LIVE).
func (s *Service) RotateStreamKey(ctx context.Context, c Caller, req *clientv1.RotateStreamKeyRequest) (*clientv1.RotateStreamKeyResponse, error) {
	k, err := s.issueStreamKey(ctx, c, req.GetRoomId(), req.GetName(), true)
	if err != nil {
		return nil, err
	}
	return &clientv1.RotateStreamKeyResponse{Key: k}, nil
}

// RevokeStreamKey deletes a stream's key (LIVE).
func (s *Service) RevokeStreamKey(ctx context.Context, c Caller, req *clientv1.RevokeStreamKeyRequest) (*clientv1.RevokeStreamKeyResponse, error) {
	roomID, name := req.GetRoomId(), req.GetName()
	if !streamName.MatchString(name) {
		return nil, invalid("name %q is not a stream name: 1-32 of a-z, 0-9, '_' and '-'", name)
	}
	if _, err := s.need(ctx, c, roomID, clientv1.Permission_PERMISSION_LIVE); err != nil {
		return nil, err
	}
	err := s.st.DeleteStreamKey(ctx, roomID, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, streamKeyNotFound(roomID, name)
	}
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	s.keyChanged(roomID, name)
	return &clientv1.RevokeStreamKeyResponse{}, nil
}

// ErrBadStreamKey is PublishKey's refusal: no such key in that room.
var ErrBadStreamKey = errors.New("rooms: unknown or revoked stream key")

// ErrKeyHolderRevoked is PublishKey's refusal of a key whose holder (the
// member who created or last rotated it) may no longer publish in the
// room: they left, were banned or lost PERMISSION_LIVE.
var ErrKeyHolderRevoked = errors.New("rooms: the stream key's holder may no longer publish in this room (left, banned or without LIVE)")

// PublishKey checks a publishing key presented for roomID and returns the
// stream's name and the key's holder, the user who publishes with it. A
// key of another room, or none, is ErrBadStreamKey; a key whose holder is
// no longer an active member with PERMISSION_LIVE is ErrKeyHolderRevoked.
func (s *Service) PublishKey(ctx context.Context, roomID, key string) (name, holder string, err error) {
	if len(key) > MaxStreamKeyLen || !strings.Contains(key, ".") {
		return "", "", ErrBadStreamKey
	}
	k, err := s.st.StreamKeyByHash(ctx, hashStreamKey(key))
	if errors.Is(err, store.ErrNotFound) || (err == nil && k.RoomID != roomID) {
		return "", "", ErrBadStreamKey
	}
	if err != nil {
		return "", "", toStatus(ctx, s.log, err)
	}
	m, ok, err := s.member(ctx, roomID, k.CreatedBy)
	if err != nil {
		return "", "", err
	}
	if !ok || !mayPublish(m) {
		return "", "", ErrKeyHolderRevoked
	}
	return k.Name, k.CreatedBy, nil
}

// AuthorizeViewer checks that the bearer token is an active member's of
// roomID, as watching the room's live streams requires.
func (s *Service) AuthorizeViewer(ctx context.Context, bearer, roomID string) (Caller, error) {
	if err := checkRoomID(roomID); err != nil {
		return Caller{}, err
	}
	c, err := s.Authenticate(ctx, bearer)
	if err != nil {
		return Caller{}, err
	}
	if _, err := s.activeMember(ctx, c, roomID); err != nil {
		return Caller{}, err
	}
	return c, nil
}

// LiveEvent sends ev to the members of roomID that have a stream open.
func (s *Service) LiveEvent(ctx context.Context, roomID string, ev *clientv1.LiveEvent) {
	s.hub.publishLive(ctx, roomID, &clientv1.ServerMessage{Payload: &clientv1.ServerMessage_Live{Live: ev}}, nil)
}

// CreatorStreamKey issues a fresh key for the stream (created, or rotated
// if it has one) in the name of the room's creator. For the assembly only
// (`croupier dev` prints the demo room's key at each start); it bypasses
// the caller checks of the rpcs.
func (s *Service) CreatorStreamKey(ctx context.Context, roomID, name string) (*clientv1.StreamKey, error) {
	r, err := s.getRoom(ctx, roomID)
	if err != nil {
		return nil, err
	}
	c := Caller{UserID: r.CreatorID}
	k, err := s.issueStreamKey(ctx, c, roomID, name, true)
	if apierr.Info(err) != nil && apierr.Info(err).GetCode() == apierr.CodeStreamKeyNotFound {
		return s.issueStreamKey(ctx, c, roomID, name, false)
	}
	return k, err
}
