package rooms

import (
	"context"
	"errors"
	"fmt"
	"strings"

	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/auth"
	"github.com/croupier/croupier/internal/store"
	"google.golang.org/grpc/codes"
)

// Caller is the authenticated player (or guest) of a call.
type Caller struct {
	UserID   string
	Username string
	Guest    bool
	// GuestRoomID is the only room a guest may use.
	GuestRoomID string
	SessionID   string
	// Source is the client's network address ("" if unknown), for the
	// room password throttle.
	Source string
}

func (c Caller) user() *clientv1.User {
	return &clientv1.User{Id: c.UserID, Username: c.Username, Guest: c.Guest}
}

// Authenticate verifies a player access token (the bearer credential,
// without "Bearer "). A token that is expired, malformed, of another
// issuer (an operator token), or of a revoked session fails with
// UNAUTHENTICATED saying which.
func (s *Service) Authenticate(ctx context.Context, bearer string) (Caller, error) {
	if bearer == "" {
		return Caller{}, unauthenticated(apierr.CodeUnauthenticated, "this call needs a player access token: send \"Authorization: Bearer <access_token>\" from Login, Register or GuestJoin")
	}
	sub, sid, err := s.issuer.Verify(bearer)
	if err != nil {
		if info := apierr.Info(err); info != nil && info.GetCode() == apierr.CodeTokenExpired {
			return Caller{}, unauthenticated(apierr.CodeTokenExpired, "access token expired; call RefreshToken or log in again")
		}
		if info := apierr.Info(err); info != nil && strings.Contains(info.GetMessage(), "refresh token") {
			return Caller{}, unauthenticated(apierr.CodeTokenInvalid, "a refresh token was sent as a bearer token; send the access token")
		}
		return Caller{}, unauthenticated(apierr.CodeTokenInvalid, "access token is invalid (not a player token of this server); log in again")
	}
	sess, err := s.st.Session(ctx, sid)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return Caller{}, unauthenticated(apierr.CodeTokenRevoked, "access token's session no longer exists; log in again")
	case err != nil:
		return Caller{}, toStatus(ctx, s.log, err)
	case sess.UserID != sub:
		return Caller{}, unauthenticated(apierr.CodeTokenInvalid, "access token is invalid (subject mismatch); log in again")
	case !sess.RevokedAt.IsZero():
		return Caller{}, errSessionRevoked()
	}
	u, err := s.st.User(ctx, sub)
	if errors.Is(err, store.ErrNotFound) {
		return Caller{}, unauthenticated(apierr.CodeTokenRevoked, "the token's user no longer exists")
	}
	if err != nil {
		return Caller{}, toStatus(ctx, s.log, err)
	}
	return Caller{UserID: u.ID, Username: u.Username, Guest: u.Guest, GuestRoomID: u.GuestRoomID, SessionID: sid}, nil
}

func userProto(u store.RoomUser) *clientv1.User {
	return &clientv1.User{Id: u.ID, Username: u.Username, Guest: u.Guest, CreatedAt: u.CreatedAt.UnixMilli()}
}

// Register creates a player account and logs it in. source is the
// client's address for the sign-up limit ("" for an in-process caller:
// none).
func (s *Service) Register(ctx context.Context, source string, req *clientv1.RegisterRequest) (*clientv1.RegisterResponse, error) {
	if err := auth.CheckUsername(req.GetUsername()); err != nil {
		return nil, invalid("%v", err)
	}
	if err := auth.CheckPassword(req.GetPassword()); err != nil {
		return nil, invalid("%v", err)
	}
	email := strings.TrimSpace(req.GetEmail())
	if len(email) > maxEmailLen {
		return nil, tooLong("email", maxEmailLen, "bytes")
	}
	if email != "" && (!strings.Contains(email, "@") || strings.ContainsAny(email, " \t\r\n")) {
		return nil, invalid("email %q is not an address", truncate(email, 64))
	}
	if err := s.signupLimit(source); err != nil {
		return nil, err // before the password is hashed: hashing is what logins wait for
	}
	hash, err := s.cred.HashPassword(ctx, req.GetPassword())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	id, err := newID()
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	u := store.RoomUser{ID: id, Username: req.GetUsername(), Email: email, PasswordHash: hash, CreatedAt: s.now()}
	if err := s.st.CreateUser(ctx, u); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, apierr.New(codes.AlreadyExists, apierr.CodeUserExists, "username "+u.Username+" is taken; pick another or log in")
		}
		return nil, toStatus(ctx, s.log, err)
	}
	t, err := s.startSession(ctx, u.ID)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return &clientv1.RegisterResponse{User: userProto(u), AccessToken: t.access, RefreshToken: t.refresh, ExpiresIn: t.expiresIn}, nil
}

type tokens struct {
	access, refresh string
	expiresIn       int64
}

func (s *Service) startSession(ctx context.Context, userID string) (tokens, error) {
	sid, err := newID()
	if err != nil {
		return tokens{}, err
	}
	rt, rhash, err := auth.NewRefreshToken()
	if err != nil {
		return tokens{}, err
	}
	now := s.now()
	if err := s.st.CreateSession(ctx, store.RoomSession{ID: sid, UserID: userID, CreatedAt: now, ExpiresAt: now.Add(s.refresh)},
		&store.RefreshToken{Hash: rhash, SessionID: sid, CreatedAt: now, ExpiresAt: now.Add(s.refresh)}); err != nil {
		return tokens{}, err
	}
	at, _, err := s.issuer.Issue(userID, sid)
	if err != nil {
		return tokens{}, err
	}
	return tokens{access: at, refresh: rt, expiresIn: int64(s.issuer.TTL().Seconds())}, nil
}

// Login checks a player's password (throttled per username and per source
// address, see ratelimit.LoginThrottle) and starts a login session. Every
// refusal reads "invalid username or password", at the same cost whether
// the user exists or not.
func (s *Service) Login(ctx context.Context, source string, req *clientv1.LoginRequest) (*clientv1.LoginResponse, error) {
	user := truncate(strings.ToLower(req.GetUsername()), 64)
	attempt, refusal := s.cred.Logins.Begin(user, source)
	if refusal != nil {
		s.m.logins.WithLabelValues("throttled").Inc()
		return nil, refusal.Err
	}
	resp, err := s.login(ctx, req)
	switch {
	case err == nil:
		attempt.Succeeded()
		s.m.logins.WithLabelValues("ok").Inc()
	case apierr.Info(err) != nil && apierr.Info(err).GetCode() == apierr.CodeInvalidCredentials:
		attempt.Failed()
		s.m.logins.WithLabelValues("invalid").Inc()
	default:
		attempt.Abandoned()
		s.m.logins.WithLabelValues("error").Inc()
	}
	return resp, err
}

func (s *Service) login(ctx context.Context, req *clientv1.LoginRequest) (*clientv1.LoginResponse, error) {
	bad := unauthenticated(apierr.CodeInvalidCredentials, "invalid username or password")
	if req.GetUsername() == "" || len(req.GetUsername()) > 64 || len(req.GetPassword()) > auth.MaxPasswordLen {
		return nil, bad
	}
	u, err := s.st.UserByName(ctx, req.GetUsername())
	hash := u.PasswordHash
	switch {
	case errors.Is(err, store.ErrNotFound):
		hash = s.cred.DummyHash()
	case err != nil:
		return nil, toStatus(ctx, s.log, err)
	}
	ok, err := s.cred.VerifyPassword(ctx, req.GetPassword(), hash)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	if !ok || u.ID == "" {
		return nil, bad
	}
	t, err := s.startSession(ctx, u.ID)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return &clientv1.LoginResponse{User: userProto(u), AccessToken: t.access, RefreshToken: t.refresh, ExpiresIn: t.expiresIn}, nil
}

// RefreshToken spends a refresh token for a new pair in the same session;
// a token presented again after the reuse grace revokes the session.
func (s *Service) RefreshToken(ctx context.Context, req *clientv1.RefreshTokenRequest) (*clientv1.RefreshTokenResponse, error) {
	if req.GetRefreshToken() == "" {
		return nil, invalid("refresh_token is required")
	}
	if len(req.GetRefreshToken()) > 256 {
		return nil, unauthenticated(apierr.CodeTokenInvalid, "refresh token not recognised; log in again")
	}
	next, nextHash, err := auth.NewRefreshToken()
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	now := s.now()
	res, err := s.st.Rotate(ctx, auth.HashRefreshToken(req.GetRefreshToken()),
		store.RefreshToken{Hash: nextHash, CreatedAt: now, ExpiresAt: now.Add(s.refresh)}, now, s.grace)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	switch res.Outcome {
	case store.Rotated, store.RotatedInGrace:
		at, _, err := s.issuer.Issue(res.Session.UserID, res.Session.ID)
		if err != nil {
			return nil, toStatus(ctx, s.log, err)
		}
		return &clientv1.RefreshTokenResponse{AccessToken: at, RefreshToken: next, ExpiresIn: int64(s.issuer.TTL().Seconds())}, nil
	case store.RotateUnknown:
		return nil, unauthenticated(apierr.CodeTokenInvalid, "refresh token not recognised; log in again")
	case store.RotateExpired:
		return nil, unauthenticated(apierr.CodeTokenExpired, "refresh token expired; log in again")
	case store.RotateRevoked:
		return nil, unauthenticated(apierr.CodeTokenRevoked, "refresh token revoked; log in again")
	case store.RotateReused:
		s.endSession(res.Session.ID) // the other nodes' end at their next session check
		return nil, unauthenticated(apierr.CodeTokenRevoked, "refresh token was already used: the session has been revoked in case it was stolen; log in again")
	}
	return nil, toStatus(ctx, s.log, fmt.Errorf("rooms: unexpected rotate outcome %d", res.Outcome))
}

// Logout ends the refresh token's session; its access tokens stop working
// at once, and its open streams end (TOKEN_REVOKED): on this node now, on
// the others at their next session check. Logging out twice is not an
// error.
func (s *Service) Logout(ctx context.Context, req *clientv1.LogoutRequest) (*clientv1.LogoutResponse, error) {
	if req.GetRefreshToken() == "" {
		return nil, invalid("refresh_token is required")
	}
	sid, err := s.st.RevokeByRefreshToken(ctx, auth.HashRefreshToken(req.GetRefreshToken()))
	if errors.Is(err, store.ErrNotFound) {
		return nil, unauthenticated(apierr.CodeTokenInvalid, "refresh token not recognised")
	}
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	s.endSession(sid)
	return &clientv1.LogoutResponse{}, nil
}
