package auth

import (
	"context"
	"errors"
	"time"

	"github.com/croupier/croupier/internal/principal"
	"github.com/croupier/croupier/internal/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// An operator's stream is checked when it opens, as every call is; a watch
// may then stay open for hours. HoldStream tracks it, so that it ends once
// its login session is revoked (logout, refresh token reuse, password
// change) or its user disabled: at once when that happens through this
// node (no database read: the change says which streams), and at the next
// RecheckStreams otherwise — the server runs it every 10 s, so a change
// made through another node reaches this node's streams within that. A
// stream that opens in the instant between its caller's authentication and
// a change through this node is caught by that next check too. An access
// token's expiry is not checked again: the session, not the token, is
// followed. (A revoked certificate ends its streams through
// revocation.List.Hold.)

// heldStream is a stream HoldStream tracks.
type heldStream struct {
	user    string
	session string // "" for an operator authenticated by certificate
	cancel  context.CancelCauseFunc
}

// recheckTimeout bounds one RecheckStreams.
const recheckTimeout = 5 * time.Second

// HoldStream tracks a stream of operator p until release is called. The
// context it returns is cancelled once p's login session is found no longer
// valid (or, for an operator authenticated by certificate, p's user
// disabled), with the UNAUTHENTICATED error a new call would get as its
// cause (context.Cause). Other callers are not held.
func (s *Service) HoldStream(ctx context.Context, p principal.Principal) (_ context.Context, release func()) {
	if p.Kind != principal.Operator {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	h := &heldStream{user: p.Name, session: p.SessionID, cancel: cancel}
	s.streamsMu.Lock()
	s.streams[h] = struct{}{}
	s.streamsMu.Unlock()
	return ctx, func() {
		s.streamsMu.Lock()
		delete(s.streams, h)
		s.streamsMu.Unlock()
		cancel(nil)
	}
}

// cutStreams ends the held streams match selects with err.
func (s *Service) cutStreams(match func(h *heldStream) bool, err error) {
	s.streamsMu.Lock()
	defer s.streamsMu.Unlock()
	for h := range s.streams {
		if match(h) {
			h.cancel(err)
		}
	}
}

// cutSession ends the streams of login session id, revoked for reason.
func (s *Service) cutSession(id, reason string) {
	s.cutStreams(func(h *heldStream) bool { return h.session == id }, sessionRevoked(reason))
}

// cutUser ends the streams of user's login sessions, all revoked for
// reason, and with certificates too when the user was disabled.
func (s *Service) cutUser(user, reason string, disabled bool) {
	s.cutStreams(func(h *heldStream) bool { return h.user == user && h.session != "" }, sessionRevoked(reason))
	if disabled {
		s.cutStreams(func(h *heldStream) bool { return h.user == user && h.session == "" }, userDisabled(user))
	}
}

// RecheckStreams ends the held streams whose session is no longer valid or
// whose user (by certificate) is disabled, reading each distinct session
// and user once, within recheckTimeout. One that cannot be read now (the
// store is down or slow) keeps its streams until a later check.
func (s *Service) RecheckStreams(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, recheckTimeout)
	defer cancel()
	sessions, users := map[string][]*heldStream{}, map[string][]*heldStream{}
	s.streamsMu.Lock()
	for h := range s.streams {
		if h.session != "" {
			sessions[h.session] = append(sessions[h.session], h)
		} else {
			users[h.user] = append(users[h.user], h)
		}
	}
	s.streamsMu.Unlock()
	cut := func(held []*heldStream, err error) bool {
		if ctx.Err() != nil {
			return false // a read cut short says nothing (some drivers answer "no rows")
		}
		if status.Code(err) == codes.Unauthenticated {
			for _, h := range held {
				h.cancel(err)
			}
		}
		return true
	}
	for id, held := range sessions {
		if !cut(held, s.sessionValid(ctx, id, held[0].user)) {
			return
		}
	}
	for user, held := range users {
		if !cut(held, s.certUserValid(ctx, user)) {
			return
		}
	}
}

// sessionValid checks that login session id of user exists, is not
// revoked and that its user is enabled.
func (s *Service) sessionValid(ctx context.Context, id, user string) error {
	st, err := s.store.Tokens().SessionState(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return unauthenticated(CodeTokenRevoked, "access token's session no longer exists; log in again")
	case err != nil:
		return err
	case st.Session.Username != user:
		return unauthenticated(CodeTokenInvalid, "access token is invalid (subject mismatch); log in again")
	case !st.Session.RevokedAt.IsZero():
		return sessionRevoked(st.Session.RevokeReason)
	case st.UserDisabled:
		return userDisabled(user)
	}
	return nil
}

// certUserValid checks that the user an operator certificate names is not
// disabled (one that does not exist holds no grants, and is not cut).
func (s *Service) certUserValid(ctx context.Context, user string) error {
	u, err := s.store.Users().Get(ctx, user)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return err
	case u.Disabled:
		return userDisabled(user)
	}
	return nil
}

func sessionRevoked(reason string) error {
	return unauthenticated(CodeTokenRevoked, "access token revoked ("+reason+"); log in again")
}

func userDisabled(user string) error {
	return unauthenticated(CodeUserDisabled, "user "+user+" is disabled")
}
