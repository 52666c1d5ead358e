package rooms

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/store"
	"google.golang.org/grpc/codes"
)

// getRoom reads a room, ROOM_NOT_FOUND if there is none.
func (s *Service) getRoom(ctx context.Context, id string) (store.Room, error) {
	r, err := s.st.Room(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Room{}, roomNotFound(id)
	}
	return r, toStatus(ctx, s.log, err)
}

// memberLeft is the stored status of a member who left the room (or whose
// request to join was rejected): the row is kept so that a re-join cannot
// shed the permissions an admin took away (admit). It is not a
// synctv.client.MemberStatus and is never sent: to every call it is no
// membership.
const memberLeft = 4

// member reads the caller's membership; found is false when there is none
// (a row of one who left is returned, with found false).
func (s *Service) member(ctx context.Context, roomID, userID string) (store.RoomMember, bool, error) {
	m, err := s.st.Member(ctx, roomID, userID)
	if errors.Is(err, store.ErrNotFound) {
		return store.RoomMember{}, false, nil
	}
	if err != nil {
		return store.RoomMember{}, false, toStatus(ctx, s.log, err)
	}
	return m, m.Status != memberLeft, nil
}

// activeMember is the caller's membership if active, else the refusal that
// says why not.
func (s *Service) activeMember(ctx context.Context, c Caller, roomID string) (store.RoomMember, error) {
	if c.Guest && c.GuestRoomID != roomID {
		return store.RoomMember{}, apierr.New(codes.PermissionDenied, apierr.CodeGuestsNotAllowed, "a guest token is valid in its own room only")
	}
	m, ok, err := s.member(ctx, roomID, c.UserID)
	if err != nil {
		return m, err
	}
	if !ok {
		if _, err := s.getRoom(ctx, roomID); err != nil {
			return m, err
		}
		return m, apierr.New(codes.PermissionDenied, apierr.CodeNotMember, "you are not a member of room "+roomID+"; call JoinRoom first")
	}
	switch clientv1.MemberStatus(m.Status) {
	case clientv1.MemberStatus_MEMBER_STATUS_BANNED:
		return m, apierr.New(codes.PermissionDenied, apierr.CodeMemberBanned, "you are banned from room "+roomID)
	case clientv1.MemberStatus_MEMBER_STATUS_PENDING:
		return m, apierr.New(codes.FailedPrecondition, apierr.CodeMemberPending, "your request to join room "+roomID+" waits for approval")
	}
	return m, nil
}

// need is activeMember plus a permission check.
func (s *Service) need(ctx context.Context, c Caller, roomID string, p clientv1.Permission) (store.RoomMember, error) {
	if err := checkRoomID(roomID); err != nil {
		return store.RoomMember{}, err
	}
	m, err := s.activeMember(ctx, c, roomID)
	if err != nil {
		return m, err
	}
	if effective(m)&uint64(p) == 0 {
		return m, missing(p, roomID)
	}
	return m, nil
}

func checkSettings(st *clientv1.RoomSettings) error {
	if st.GetDefaultPermissions()&^AllPermissions != 0 {
		return invalid("default_permissions %#x has unknown bits: the known ones are %#x", st.GetDefaultPermissions(), AllPermissions)
	}
	return nil
}

func (s *Service) roomPassword(ctx context.Context, pw string) (string, error) {
	if pw == "" {
		return "", nil
	}
	if len(pw) > maxRoomPassword {
		return "", tooLong("password", maxRoomPassword, "bytes")
	}
	h, err := s.cred.HashPassword(ctx, pw)
	return h, toStatus(ctx, s.log, err)
}

// CreateRoom creates a room with the caller as its creator.
func (s *Service) CreateRoom(ctx context.Context, c Caller, req *clientv1.CreateRoomRequest) (*clientv1.CreateRoomResponse, error) {
	if c.Guest {
		return nil, denied("guests cannot create rooms; register an account")
	}
	name, err := checkName("name", req.GetName())
	if err != nil {
		return nil, err
	}
	if err := checkSettings(req.GetSettings()); err != nil {
		return nil, err
	}
	hash, err := s.roomPassword(ctx, req.GetPassword())
	if err != nil {
		return nil, err
	}
	id, err := newID()
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	now := s.now()
	set := req.GetSettings()
	perms := set.GetDefaultPermissions()
	if perms == 0 {
		perms = DefaultMemberPermissions
	}
	r := store.Room{ID: id, Name: name, CreatorID: c.UserID, PasswordHash: hash, Hidden: set.GetHidden(),
		JoinNeedsApproval: set.GetJoinNeedsApproval(), AllowGuests: set.GetAllowGuests(), DefaultPermissions: perms,
		CreatedAt: now, State: store.PlaybackState{Rate: 1}, MemberCount: 1}
	m := store.RoomMember{RoomID: id, UserID: c.UserID, Role: int(clientv1.MemberRole_MEMBER_ROLE_CREATOR),
		Status: int(clientv1.MemberStatus_MEMBER_STATUS_ACTIVE), Permissions: AllPermissions, JoinedAt: now,
		Username: c.Username, Guest: c.Guest}
	if err := s.st.CreateRoom(ctx, r, m); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return &clientv1.CreateRoomResponse{Room: s.roomProto(r), Member: memberProto(m, false)}, nil
}

// JoinRoom makes the caller a member: at once, or pending approval when
// the room requires it. Joining a room one is in returns the membership.
func (s *Service) JoinRoom(ctx context.Context, c Caller, req *clientv1.JoinRoomRequest) (*clientv1.JoinRoomResponse, error) {
	if err := checkRoomID(req.GetRoomId()); err != nil {
		return nil, err
	}
	if len(req.GetPassword()) > maxRoomPassword {
		return nil, tooLong("password", maxRoomPassword, "bytes")
	}
	if c.Guest && c.GuestRoomID != req.GetRoomId() {
		return nil, apierr.New(codes.PermissionDenied, apierr.CodeGuestsNotAllowed, "a guest token is valid in its own room only")
	}
	r, err := s.getRoom(ctx, req.GetRoomId())
	if err != nil {
		return nil, err
	}
	m, ok, err := s.member(ctx, r.ID, c.UserID)
	if err != nil {
		return nil, err
	}
	if !ok {
		if m, err = s.admit(ctx, r, c, req.GetPassword(), m); err != nil {
			return nil, err
		}
		r.MemberCount++
	}
	switch clientv1.MemberStatus(m.Status) {
	case clientv1.MemberStatus_MEMBER_STATUS_BANNED:
		return nil, apierr.New(codes.PermissionDenied, apierr.CodeMemberBanned, "you are banned from room "+r.ID)
	case clientv1.MemberStatus_MEMBER_STATUS_PENDING:
		return &clientv1.JoinRoomResponse{Room: s.roomProto(r), Member: memberProto(m, false)}, nil
	}
	return &clientv1.JoinRoomResponse{Room: s.roomProto(r), Member: memberProto(m, s.hub.online(r.ID, c.UserID)), State: s.currentState(ctx, r)}, nil
}

// admit checks the password and stores a new membership, active or
// pending, telling the room. prev is the row of a member who left (status
// memberLeft; else zero): the re-join gets no permission the member had
// lost by then, so leaving and joining again does not undo an admin's
// restriction (it does not restore a role or a grant beyond the defaults
// either: leaving gives those up).
func (s *Service) admit(ctx context.Context, r store.Room, c Caller, password string, prev store.RoomMember) (store.RoomMember, error) {
	if err := s.checkRoomPassword(ctx, r, c, password); err != nil {
		return store.RoomMember{}, err
	}
	perms := r.DefaultPermissions
	if prev.Status == memberLeft {
		perms &= prev.Permissions
	}
	if c.Guest {
		perms &= guestMask
	}
	m := store.RoomMember{RoomID: r.ID, UserID: c.UserID, Role: int(clientv1.MemberRole_MEMBER_ROLE_MEMBER),
		Status: int(clientv1.MemberStatus_MEMBER_STATUS_ACTIVE), Permissions: perms, JoinedAt: s.now(),
		Username: c.Username, Guest: c.Guest}
	kind := clientv1.MemberUpdate_KIND_JOINED
	if r.JoinNeedsApproval {
		m.Status, kind = int(clientv1.MemberStatus_MEMBER_STATUS_PENDING), clientv1.MemberUpdate_KIND_PENDING
	}
	if err := s.st.PutMember(ctx, m); err != nil {
		return m, toStatus(ctx, s.log, err)
	}
	s.hub.publishLive(ctx, r.ID, memberUpdate(kind, memberProto(m, false)), nil)
	return m, nil
}

// checkRoomPassword checks the password of a room that has one. Wrong
// guesses are throttled as logins are (ratelimit.LoginThrottle, the
// service's LoginThrottle settings): per room and user, per room and
// address (IPv6: its /64) for a guest, who has no user yet; a throttled attempt is refused with RESOURCE_EXHAUSTED RATE_LIMITED and
// retry_after_ms before the password is checked. A missing password is
// not a guess and counts for nothing.
func (s *Service) checkRoomPassword(ctx context.Context, r store.Room, c Caller, password string) error {
	if r.PasswordHash == "" {
		return nil
	}
	if password == "" {
		return apierr.New(codes.PermissionDenied, apierr.CodeRoomPassword, "room "+r.ID+" needs a password")
	}
	attempt, refusal := s.roomPasswords.Begin(roomPasswordKey(r.ID, c), "")
	if refusal != nil {
		wait := refusal.RetryAfter
		return apierr.New(codes.ResourceExhausted, apierr.CodeRateLimited,
			fmt.Sprintf("too many wrong passwords for room %s; retry in %ds", r.ID, max(int64((wait+time.Second-1)/time.Second), 1)),
			"retry_after_ms", strconv.FormatInt(wait.Milliseconds(), 10), "limit", "room_password")
	}
	ok, err := s.cred.VerifyPassword(ctx, password, r.PasswordHash)
	switch {
	case err != nil:
		attempt.Abandoned()
		return toStatus(ctx, s.log, err)
	case !ok:
		attempt.Failed()
		return apierr.New(codes.PermissionDenied, apierr.CodeRoomPassword, "wrong room password")
	}
	attempt.Succeeded()
	return nil
}

// maxGuestPrecedents bounds the earlier guests from one address (banned or
// restricted) that a new guest's admission reads.
const maxGuestPrecedents = 256

// guestPrecedent is what the room's earlier guests from source pass on
// to a new guest from there. A guest has no account, so without it one
// banned or muted could come back at once under a new name: a banned one
// refuses guests from the address (PERMISSION_DENIED MEMBER_BANNED, until
// they are unbanned), and a new guest gets no permission that an admin
// took from one who joined from there within the guest token's lifetime
// (a mute; SetMemberPermissions marks it Restricted), as a member who left
// and joins again does (admit's prev, with status memberLeft). A
// restriction passed on this way is not itself passed on, so lifting the
// original mute frees the next guests. Registered users are never held
// back by their address: an address is shared by everyone behind one NAT,
// so the refusal tells a guest to register or log in instead.
func (s *Service) guestPrecedent(ctx context.Context, roomID, source string) (store.RoomMember, error) {
	if source == "" {
		return store.RoomMember{}, nil
	}
	banned := int(clientv1.MemberStatus_MEMBER_STATUS_BANNED)
	ms, err := s.st.GuestPrecedents(ctx, roomID, source, banned, s.now().Add(-s.guestTTL), maxGuestPrecedents)
	if err != nil {
		return store.RoomMember{}, toStatus(ctx, s.log, err)
	}
	prev := store.RoomMember{Status: memberLeft, Permissions: AllPermissions}
	for _, m := range ms {
		if m.Status == banned {
			return store.RoomMember{}, apierr.New(codes.PermissionDenied, apierr.CodeMemberBanned,
				"a guest from your address is banned from room "+roomID+"; register or log in to join")
		}
		prev.Permissions &= m.Permissions
	}
	return prev, nil
}

// roomPasswordKey is whose wrong passwords for room count together. A
// registered user's guesses count against their own key only: an address
// is shared by everyone behind one NAT (carrier-grade NAT is common for
// players), and one of them must not lock the others out. A guest has no
// user yet, so its key is its address.
func roomPasswordKey(roomID string, c Caller) string {
	if c.UserID == "" {
		return roomID + "\x00addr\x00" + c.Source
	}
	return roomID + "\x00user\x00" + c.UserID
}

// currentState is the room's playback state: the live one if the room is
// live, else the stored one.
func (s *Service) currentState(ctx context.Context, r store.Room) *clientv1.RoomState {
	var out *clientv1.RoomState
	s.hub.ifLive(r.ID, func(lr *liveRoom) { out = lr.stateProto() })
	if out != nil {
		return out
	}
	var movie *clientv1.Movie
	if r.State.MovieID != "" {
		if m, err := s.st.Movie(ctx, r.ID, r.State.MovieID); err == nil {
			movie = movieProto(m)
		}
	}
	return stateProto(r.State, movie)
}

// GuestJoin creates a guest user in a room that allows guests and returns
// its access token; source is the client's address (wrong room passwords
// are throttled per room and address).
func (s *Service) GuestJoin(ctx context.Context, source string, req *clientv1.GuestJoinRequest) (*clientv1.GuestJoinResponse, error) {
	if err := checkRoomID(req.GetRoomId()); err != nil {
		return nil, err
	}
	name, err := checkName("name", req.GetName())
	if err != nil {
		return nil, err
	}
	if len(req.GetPassword()) > maxRoomPassword {
		return nil, tooLong("password", maxRoomPassword, "bytes")
	}
	r, err := s.getRoom(ctx, req.GetRoomId())
	if err != nil {
		return nil, err
	}
	if !r.AllowGuests {
		return nil, apierr.New(codes.PermissionDenied, apierr.CodeGuestsNotAllowed, "room "+r.ID+" does not allow guests; register or log in")
	}
	uid, err := newID()
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	sid, err := newID()
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	now := s.now()
	u := store.RoomUser{ID: uid, Username: name, Guest: true, GuestRoomID: r.ID, GuestAddr: source, CreatedAt: now}
	c := Caller{UserID: uid, Username: name, Guest: true, GuestRoomID: r.ID, SessionID: sid}
	// The address's precedent and the password are checked before the
	// user is stored, so a refusal leaves nothing behind; the precedent
	// first, so a banned address cannot try passwords.
	prev, err := s.guestPrecedent(ctx, r.ID, source)
	if err != nil {
		return nil, err
	}
	if err := s.checkRoomPassword(ctx, r, Caller{Guest: true, Source: source}, req.GetPassword()); err != nil {
		return nil, err
	}
	// Only a guest about to be stored spends a sign-up: wrong passwords
	// (throttled on their own) and banned addresses do not.
	if err := s.signupLimit(source); err != nil {
		return nil, err
	}
	if err := s.st.CreateUser(ctx, u); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	if err := s.st.CreateSession(ctx, store.RoomSession{ID: sid, UserID: uid, CreatedAt: now, ExpiresAt: now.Add(s.guestTTL)}, nil); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	checked := r
	checked.PasswordHash = "" // checked above; the response still says the room has one
	m, err := s.admit(ctx, checked, c, "", prev)
	if err != nil {
		return nil, err
	}
	// Guests have no refresh token: the access token lives as long as the
	// session.
	at, _, err := s.guests.Issue(uid, sid)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	r.MemberCount++
	resp := &clientv1.GuestJoinResponse{User: userProto(u), AccessToken: at, ExpiresIn: int64(s.guestTTL.Seconds()),
		Room: s.roomProto(r), Member: memberProto(m, false)}
	if m.Status == int(clientv1.MemberStatus_MEMBER_STATUS_ACTIVE) {
		resp.State = s.currentState(ctx, r)
	}
	return resp, nil
}

// LeaveRoom ends the caller's membership (and stream). The creator cannot
// leave: they delete the room instead.
func (s *Service) LeaveRoom(ctx context.Context, c Caller, req *clientv1.LeaveRoomRequest) (*clientv1.LeaveRoomResponse, error) {
	if err := checkRoomID(req.GetRoomId()); err != nil {
		return nil, err
	}
	m, ok, err := s.member(ctx, req.GetRoomId(), c.UserID)
	if err != nil {
		return nil, err
	}
	if !ok || m.Status == int(clientv1.MemberStatus_MEMBER_STATUS_BANNED) {
		if _, err := s.getRoom(ctx, req.GetRoomId()); err != nil {
			return nil, err
		}
		return nil, apierr.New(codes.FailedPrecondition, apierr.CodeNotMember, "you are not a member of room "+req.GetRoomId())
	}
	if m.Role == int(clientv1.MemberRole_MEMBER_ROLE_CREATOR) {
		return nil, apierr.New(codes.FailedPrecondition, apierr.CodeCreatorCannotLeave, "the creator cannot leave room "+req.GetRoomId()+"; delete it instead")
	}
	left := m
	left.Status = memberLeft // kept: a re-join keeps what an admin took away (admit)
	if err := s.st.PutMember(ctx, left); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	s.hub.publishLive(ctx, m.RoomID, memberUpdate(clientv1.MemberUpdate_KIND_LEFT, memberProto(m, false)), func(r *liveRoom) {
		r.kick(m.UserID, errorMessage(apierr.New(codes.FailedPrecondition, apierr.CodeNotMember, "you left the room"), ""))
	})
	s.revokeLive(LiveRevocation{RoomID: m.RoomID, UserID: m.UserID, Watch: true})
	return &clientv1.LeaveRoomResponse{}, nil
}

// GetRoomInfo returns the room; its state and the caller's membership only
// to members.
func (s *Service) GetRoomInfo(ctx context.Context, c Caller, req *clientv1.GetRoomInfoRequest) (*clientv1.GetRoomInfoResponse, error) {
	if err := checkRoomID(req.GetRoomId()); err != nil {
		return nil, err
	}
	if c.Guest && c.GuestRoomID != req.GetRoomId() {
		return nil, apierr.New(codes.PermissionDenied, apierr.CodeGuestsNotAllowed, "a guest token is valid in its own room only")
	}
	r, err := s.getRoom(ctx, req.GetRoomId())
	if err != nil {
		return nil, err
	}
	resp := &clientv1.GetRoomInfoResponse{Room: s.roomProto(r)}
	m, ok, err := s.member(ctx, r.ID, c.UserID)
	if err != nil {
		return nil, err
	}
	if ok {
		resp.Member = memberProto(m, s.hub.online(r.ID, c.UserID))
		if m.Status == int(clientv1.MemberStatus_MEMBER_STATUS_ACTIVE) {
			resp.State = s.currentState(ctx, r)
		}
	}
	return resp, nil
}

func pageSize(n int32) (int, error) {
	switch {
	case n < 0:
		return 0, invalid("page_size must be >= 0")
	case n == 0:
		return defaultPageSize, nil
	case n > maxPageSize:
		return maxPageSize, nil
	}
	return int(n), nil
}

func encodeToken(parts ...string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strings.Join(parts, "|")))
}

func decodeToken(tok string, n int) ([]string, error) {
	bad := invalid("page_token is malformed: pass the next_page_token of the previous page unchanged")
	if len(tok) > maxPageToken {
		return nil, bad
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return nil, bad
	}
	parts := strings.Split(string(b), "|")
	if len(parts) != n {
		return nil, bad
	}
	return parts, nil
}

// ListRooms lists rooms that are not hidden, newest first; anyone may.
func (s *Service) ListRooms(ctx context.Context, req *clientv1.ListRoomsRequest) (*clientv1.ListRoomsResponse, error) {
	size, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	search := strings.TrimSpace(req.GetSearch())
	if len([]rune(search)) > maxSearchRunes {
		return nil, tooLong("search", maxSearchRunes, "characters")
	}
	var after *store.RoomCursor
	if req.GetPageToken() != "" {
		p, err := decodeToken(req.GetPageToken(), 2)
		if err != nil {
			return nil, err
		}
		at, err := strconv.ParseInt(p[0], 10, 64)
		if err != nil {
			return nil, invalid("page_token is malformed: pass the next_page_token of the previous page unchanged")
		}
		after = &store.RoomCursor{CreatedAt: at, ID: p[1]}
	}
	rooms, err := s.st.ListRooms(ctx, search, after, size+1)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	resp := &clientv1.ListRoomsResponse{}
	if len(rooms) > size {
		rooms = rooms[:size]
		last := rooms[size-1]
		resp.NextPageToken = encodeToken(strconv.FormatInt(last.CreatedAt.UnixMilli(), 10), last.ID)
	}
	for _, r := range rooms {
		resp.Rooms = append(resp.Rooms, s.roomProto(r))
	}
	return resp, nil
}

// creatorOnly reads the room and refuses anyone but its creator.
func (s *Service) creatorOnly(ctx context.Context, c Caller, roomID, what string) (store.Room, error) {
	if err := checkRoomID(roomID); err != nil {
		return store.Room{}, err
	}
	r, err := s.getRoom(ctx, roomID)
	if err != nil {
		return r, err
	}
	if r.CreatorID != c.UserID {
		return r, denied("only the creator of room %s may %s", roomID, what)
	}
	return r, nil
}

// UpdateRoomSettings changes the name, password or settings (creator only).
func (s *Service) UpdateRoomSettings(ctx context.Context, c Caller, req *clientv1.UpdateRoomSettingsRequest) (*clientv1.UpdateRoomSettingsResponse, error) {
	r, err := s.creatorOnly(ctx, c, req.GetRoomId(), "change its settings")
	if err != nil {
		return nil, err
	}
	if req.Name != nil {
		if r.Name, err = checkName("name", req.GetName()); err != nil {
			return nil, err
		}
	}
	if req.Password != nil {
		if r.PasswordHash, err = s.roomPassword(ctx, req.GetPassword()); err != nil {
			return nil, err
		}
	}
	if set := req.GetSettings(); set != nil {
		if err := checkSettings(set); err != nil {
			return nil, err
		}
		r.Hidden, r.JoinNeedsApproval, r.AllowGuests = set.GetHidden(), set.GetJoinNeedsApproval(), set.GetAllowGuests()
		if set.GetDefaultPermissions() != 0 {
			r.DefaultPermissions = set.GetDefaultPermissions()
		}
	}
	if err := s.st.UpdateRoomSettings(ctx, r); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, roomNotFound(r.ID)
		}
		return nil, toStatus(ctx, s.log, err)
	}
	room := s.roomProto(r)
	s.hub.publishLive(ctx, r.ID, &clientv1.ServerMessage{Payload: &clientv1.ServerMessage_Room{Room: &clientv1.RoomUpdate{Room: room}}}, nil)
	return &clientv1.UpdateRoomSettingsResponse{Room: room}, nil
}

// DeleteRoom deletes the room (creator only); its streams get a
// RoomUpdate with deleted set and end, and so do its live streams
// (publishers and viewers). With a Bus the update goes through the room's
// log, so the streams on every node end (Deliver).
func (s *Service) DeleteRoom(ctx context.Context, c Caller, req *clientv1.DeleteRoomRequest) (*clientv1.DeleteRoomResponse, error) {
	r, err := s.creatorOnly(ctx, c, req.GetRoomId(), "delete it")
	if err != nil {
		return nil, err
	}
	if s.bus != nil {
		// Loaded while its row exists: the deletion is published from it.
		lr, err := s.hub.acquire(ctx, r.ID)
		if err != nil {
			return nil, err
		}
		defer s.hub.release(lr)
	}
	if err := s.st.DeleteRoom(ctx, r.ID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, roomNotFound(r.ID)
		}
		return nil, toStatus(ctx, s.log, err)
	}
	s.hub.ifLive(r.ID, func(lr *liveRoom) {
		msg := &clientv1.ServerMessage{Payload: &clientv1.ServerMessage_Room{
			Room: &clientv1.RoomUpdate{Room: s.roomProtoLocked(r, len(lr.subs)+s.hub.elsewhere(r.ID)), Deleted: true}}}
		if s.bus != nil {
			if err := s.hub.publish(ctx, lr, msg); err != nil {
				// Deleted all the same: the other nodes' streams end at
				// their next change (ROOM_NOT_FOUND) or reconnect.
				s.log.Warn("room deletion not published", "room", r.ID, "err", err)
			}
		} else {
			// Delivered without a new seq: the room's sequence ends here.
			msg.Timestamp = s.nowMs()
		}
		s.hub.closeDeleted(lr, outgoing(msg))
	})
	s.revokeLive(LiveRevocation{RoomID: r.ID, Watch: true})
	return &clientv1.DeleteRoomResponse{}, nil
}

// roomProtoLocked is roomProto for callers holding the room's lock (which
// roomProto's online count would take again).
func (s *Service) roomProtoLocked(r store.Room, online int) *clientv1.Room {
	return &clientv1.Room{Id: r.ID, Name: r.Name, CreatorId: r.CreatorID, HasPassword: r.PasswordHash != "",
		Settings: &clientv1.RoomSettings{Hidden: r.Hidden, JoinNeedsApproval: r.JoinNeedsApproval, AllowGuests: r.AllowGuests,
			DefaultPermissions: r.DefaultPermissions},
		MemberCount: int32(r.MemberCount), OnlineCount: int32(online), CreatedAt: r.CreatedAt.UnixMilli()}
}

// ListMembers pages through the room's members by status (active by
// default; pending needs APPROVE_MEMBERS, banned needs BAN_MEMBERS).
func (s *Service) ListMembers(ctx context.Context, c Caller, req *clientv1.ListMembersRequest) (*clientv1.ListMembersResponse, error) {
	status := req.GetStatus()
	perm := clientv1.Permission_PERMISSION_UNSPECIFIED
	switch status {
	case clientv1.MemberStatus_MEMBER_STATUS_UNSPECIFIED:
		status = clientv1.MemberStatus_MEMBER_STATUS_ACTIVE
	case clientv1.MemberStatus_MEMBER_STATUS_ACTIVE:
	case clientv1.MemberStatus_MEMBER_STATUS_PENDING:
		perm = clientv1.Permission_PERMISSION_APPROVE_MEMBERS
	case clientv1.MemberStatus_MEMBER_STATUS_BANNED:
		perm = clientv1.Permission_PERMISSION_BAN_MEMBERS
	default:
		return nil, invalid("status %d is not a member status", status)
	}
	if err := checkRoomID(req.GetRoomId()); err != nil {
		return nil, err
	}
	var err error
	if perm == clientv1.Permission_PERMISSION_UNSPECIFIED {
		_, err = s.activeMember(ctx, c, req.GetRoomId())
	} else {
		_, err = s.need(ctx, c, req.GetRoomId(), perm)
	}
	if err != nil {
		return nil, err
	}
	size, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	var after *store.MemberCursor
	if req.GetPageToken() != "" {
		p, err := decodeToken(req.GetPageToken(), 2)
		if err != nil {
			return nil, err
		}
		at, err := strconv.ParseInt(p[0], 10, 64)
		if err != nil {
			return nil, invalid("page_token is malformed: pass the next_page_token of the previous page unchanged")
		}
		after = &store.MemberCursor{JoinedAt: at, UserID: p[1]}
	}
	ms, err := s.st.ListMembers(ctx, req.GetRoomId(), int(status), after, size+1)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	resp := &clientv1.ListMembersResponse{}
	if len(ms) > size {
		ms = ms[:size]
		last := ms[size-1]
		resp.NextPageToken = encodeToken(strconv.FormatInt(last.JoinedAt.UnixMilli(), 10), last.UserID)
	}
	online := map[string]bool{}
	s.hub.ifLive(req.GetRoomId(), func(r *liveRoom) {
		for uid := range r.subs {
			online[uid] = true
		}
	})
	for _, m := range ms {
		resp.Members = append(resp.Members, memberProto(m, online[m.UserID]))
	}
	return resp, nil
}

// target reads the member a management call is about and checks that the
// caller outranks them.
func (s *Service) target(ctx context.Context, actor store.RoomMember, roomID, userID string) (store.RoomMember, error) {
	if err := checkUserID("user_id", userID); err != nil {
		return store.RoomMember{}, err
	}
	m, ok, err := s.member(ctx, roomID, userID)
	if err != nil {
		return m, err
	}
	if !ok {
		return m, apierr.New(codes.NotFound, apierr.CodeMemberNotFound, "user "+userID+" is not a member of room "+roomID)
	}
	// Plain members are managed by anyone holding the permission; admins
	// only by the creator; the creator by no one.
	if m.UserID == actor.UserID {
		return m, denied("you cannot manage your own membership of room %s", roomID)
	}
	if rank(m.Role) > rank(int(clientv1.MemberRole_MEMBER_ROLE_MEMBER)) && rank(actor.Role) <= rank(m.Role) {
		return m, denied("user %s is %s in room %s: only a higher role may manage them", userID,
			strings.ToLower(strings.TrimPrefix(clientv1.MemberRole(m.Role).String(), "MEMBER_ROLE_")), roomID)
	}
	return m, nil
}

// ApproveMember accepts (active, with the permissions admit gave the
// request) or rejects (no membership; they may ask again) a pending member.
func (s *Service) ApproveMember(ctx context.Context, c Caller, req *clientv1.ApproveMemberRequest) (*clientv1.ApproveMemberResponse, error) {
	actor, err := s.need(ctx, c, req.GetRoomId(), clientv1.Permission_PERMISSION_APPROVE_MEMBERS)
	if err != nil {
		return nil, err
	}
	m, err := s.target(ctx, actor, req.GetRoomId(), req.GetUserId())
	if err != nil {
		return nil, err
	}
	if m.Status != int(clientv1.MemberStatus_MEMBER_STATUS_PENDING) {
		return nil, apierr.New(codes.FailedPrecondition, apierr.CodeMemberStatus, "user "+m.UserID+" is not waiting for approval")
	}
	if !req.GetApprove() {
		// Kept as left, not deleted: the request's permissions (see admit)
		// hold for the next one.
		left := m
		left.Status = memberLeft
		if err := s.st.PutMember(ctx, left); err != nil {
			return nil, toStatus(ctx, s.log, err)
		}
		m.Status = int(clientv1.MemberStatus_MEMBER_STATUS_UNSPECIFIED)
		s.hub.publishLive(ctx, m.RoomID, memberUpdate(clientv1.MemberUpdate_KIND_LEFT, memberProto(m, false)), nil)
		return &clientv1.ApproveMemberResponse{Member: memberProto(m, false)}, nil
	}
	m.Status = int(clientv1.MemberStatus_MEMBER_STATUS_ACTIVE)
	m.JoinedAt = s.now()
	if err := s.st.PutMember(ctx, m); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	s.hub.publishLive(ctx, m.RoomID, memberUpdate(clientv1.MemberUpdate_KIND_JOINED, memberProto(m, false)), nil)
	return &clientv1.ApproveMemberResponse{Member: memberProto(m, false)}, nil
}

// BanMember bans a member below the caller's role: their stream ends and
// they cannot join again until unbanned.
func (s *Service) BanMember(ctx context.Context, c Caller, req *clientv1.BanMemberRequest) (*clientv1.BanMemberResponse, error) {
	actor, err := s.need(ctx, c, req.GetRoomId(), clientv1.Permission_PERMISSION_BAN_MEMBERS)
	if err != nil {
		return nil, err
	}
	m, err := s.target(ctx, actor, req.GetRoomId(), req.GetUserId())
	if err != nil {
		return nil, err
	}
	m.Status = int(clientv1.MemberStatus_MEMBER_STATUS_BANNED)
	if err := s.st.PutMember(ctx, m); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	s.hub.publishLive(ctx, m.RoomID, memberUpdate(clientv1.MemberUpdate_KIND_BANNED, memberProto(m, false)), func(r *liveRoom) {
		r.kick(m.UserID, errorMessage(apierr.New(codes.PermissionDenied, apierr.CodeMemberBanned, "you were banned from room "+m.RoomID), ""))
	})
	s.revokeLive(LiveRevocation{RoomID: m.RoomID, UserID: m.UserID, Watch: true})
	return &clientv1.BanMemberResponse{}, nil
}

// UnbanMember lifts a ban: the user may join again.
func (s *Service) UnbanMember(ctx context.Context, c Caller, req *clientv1.UnbanMemberRequest) (*clientv1.UnbanMemberResponse, error) {
	actor, err := s.need(ctx, c, req.GetRoomId(), clientv1.Permission_PERMISSION_BAN_MEMBERS)
	if err != nil {
		return nil, err
	}
	m, err := s.target(ctx, actor, req.GetRoomId(), req.GetUserId())
	if err != nil {
		return nil, err
	}
	if m.Status != int(clientv1.MemberStatus_MEMBER_STATUS_BANNED) {
		return nil, apierr.New(codes.FailedPrecondition, apierr.CodeMemberStatus, "user "+m.UserID+" is not banned")
	}
	if err := s.st.DeleteMember(ctx, m.RoomID, m.UserID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, toStatus(ctx, s.log, err)
	}
	return &clientv1.UnbanMemberResponse{}, nil
}

// SetMemberPermissions sets a member's role and bitmask. Only the creator
// makes admins; admins (with SET_PERMISSIONS) manage members, changing
// only the bits they hold themselves. A member left without LIVE stops
// publishing.
func (s *Service) SetMemberPermissions(ctx context.Context, c Caller, req *clientv1.SetMemberPermissionsRequest) (*clientv1.SetMemberPermissionsResponse, error) {
	actor, err := s.need(ctx, c, req.GetRoomId(), clientv1.Permission_PERMISSION_SET_PERMISSIONS)
	if err != nil {
		return nil, err
	}
	if req.GetPermissions()&^AllPermissions != 0 {
		return nil, invalid("permissions %#x has unknown bits: the known ones are %#x", req.GetPermissions(), AllPermissions)
	}
	switch req.GetRole() {
	case clientv1.MemberRole_MEMBER_ROLE_UNSPECIFIED, clientv1.MemberRole_MEMBER_ROLE_MEMBER:
	case clientv1.MemberRole_MEMBER_ROLE_ADMIN:
		if actor.Role != int(clientv1.MemberRole_MEMBER_ROLE_CREATOR) {
			return nil, denied("only the creator of room %s may make admins", req.GetRoomId())
		}
	default:
		return nil, invalid("role %s cannot be given: use MEMBER or ADMIN", req.GetRole())
	}
	m, err := s.target(ctx, actor, req.GetRoomId(), req.GetUserId())
	if err != nil {
		return nil, err
	}
	if m.Status != int(clientv1.MemberStatus_MEMBER_STATUS_ACTIVE) {
		return nil, apierr.New(codes.FailedPrecondition, apierr.CodeMemberStatus, "user "+m.UserID+" is not an active member")
	}
	perms := req.GetPermissions()
	if m.Guest {
		perms &= guestMask
	}
	// Only the creator hands out or takes away bits they do not hold
	// themselves; anyone else changes only bits they hold, so holding
	// SET_PERMISSIONS is not a way to every bit.
	if changed := (m.Permissions ^ perms) &^ effective(actor); changed != 0 && actor.Role != int(clientv1.MemberRole_MEMBER_ROLE_CREATOR) {
		return nil, denied("you cannot grant or remove permissions you do not hold yourself (%s) in room %s; ask the room's creator",
			permNames(changed), req.GetRoomId())
	}
	if req.GetRole() != clientv1.MemberRole_MEMBER_ROLE_UNSPECIFIED {
		m.Role = int(req.GetRole())
	}
	m.Permissions = perms
	if m.Guest {
		// A guest without some of the room's defaults was muted by an
		// admin: new guests from their address get no more
		// (guestPrecedent).
		r, err := s.getRoom(ctx, m.RoomID)
		if err != nil {
			return nil, err
		}
		m.Restricted = r.DefaultPermissions&guestMask&^perms != 0
	}
	if err := s.st.PutMember(ctx, m); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	online := false
	s.hub.publishLive(ctx, m.RoomID, memberUpdate(clientv1.MemberUpdate_KIND_PERMISSIONS_CHANGED, memberProto(m, false)), func(r *liveRoom) {
		if st := r.subs[m.UserID]; st != nil {
			st.member, online = m, true
		}
	})
	if !mayPublish(m) {
		s.revokeLive(LiveRevocation{RoomID: m.RoomID, UserID: m.UserID})
	}
	return &clientv1.SetMemberPermissionsResponse{Member: memberProto(m, online)}, nil
}

// GetChatHistory pages back through the retained chat (members only).
func (s *Service) GetChatHistory(ctx context.Context, c Caller, req *clientv1.GetChatHistoryRequest) (*clientv1.GetChatHistoryResponse, error) {
	if err := checkRoomID(req.GetRoomId()); err != nil {
		return nil, err
	}
	if req.GetBeforeSeq() < 0 || req.GetLimit() < 0 {
		return nil, invalid("before_seq and limit must be >= 0")
	}
	if _, err := s.activeMember(ctx, c, req.GetRoomId()); err != nil {
		return nil, err
	}
	limit := int(req.GetLimit())
	if limit == 0 {
		limit = 50
	}
	limit = min(limit, chatKeep)
	msgs, err := s.st.ChatBefore(ctx, req.GetRoomId(), req.GetBeforeSeq(), limit+1)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	resp := &clientv1.GetChatHistoryResponse{}
	if len(msgs) > limit {
		msgs = msgs[1:]
		resp.NextBeforeSeq = msgs[0].Seq
	}
	for _, m := range msgs {
		resp.Messages = append(resp.Messages, chatProto(m))
	}
	return resp, nil
}
