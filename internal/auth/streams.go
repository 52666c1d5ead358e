package auth

import (
	"context"
	"errors"
	"time"

	"github.com/croupier/croupier/internal/principal"
	"github.com/croupier/croupier/internal/rbac"
	"github.com/croupier/croupier/internal/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// An operator's stream is checked when it opens, as every call is; a watch
// may then stay open for hours. HoldStream tracks it, so that it ends once
// its login session is revoked (logout, refresh token reuse, password
// change), its user disabled, or a role it needed revoked: at once when
// that happens through this node (the change says which streams; a role
// revocation reads the user's remaining grants), and at the next
// RecheckStreams otherwise — the server runs it every 10 s, so a change
// made through another node reaches this node's streams within that. A
// stream that opens in the instant between its caller's authentication and
// a change through this node is caught by that next check too. An access
// token's expiry is not checked again: the session, not the token, is
// followed. (A revoked certificate ends its streams through
// revocation.List.Hold; both hold them in a streamcut.Set.)

// heldKey is what HoldStream holds a stream by.
type heldKey struct {
	user    string
	session string    // "" for an operator authenticated by certificate
	need    rbac.Need // the permission the stream was admitted with
}

// recheckTimeout bounds one RecheckStreams.
const recheckTimeout = 5 * time.Second

// HoldStream tracks a stream of operator p, admitted with need, until
// release is called. The context it returns is cut (streamcut) once p's
// login session is found no longer valid (or, for an operator
// authenticated by certificate, p's user disabled), with the
// UNAUTHENTICATED error a new call would get, or once p's grants no longer
// give need, with the PERMISSION_DENIED one. Other callers are not held.
func (s *Service) HoldStream(ctx context.Context, p principal.Principal, need rbac.Need) (_ context.Context, release func()) {
	if p.Kind != principal.Operator {
		return ctx, func() {}
	}
	return s.streams.Hold(ctx, heldKey{user: p.Name, session: p.SessionID, need: need})
}

// cutSession ends the streams of login session id, revoked for reason.
func (s *Service) cutSession(id, reason string) {
	s.streams.Cut(func(k heldKey) bool { return k.session == id }, func(heldKey) error { return sessionRevoked(reason) })
}

// cutUser ends the streams of user's login sessions, all revoked for
// reason, and with certificates too when the user was disabled.
func (s *Service) cutUser(user, reason string, disabled bool) {
	s.streams.Cut(func(k heldKey) bool { return k.user == user && (k.session != "" || disabled) }, func(k heldKey) error {
		if k.session == "" {
			return userDisabled(user)
		}
		return sessionRevoked(reason)
	})
}

// cutUngranted ends the streams of user whose need its grants, read now,
// no longer give (after a role was revoked through this node). A read that
// fails cuts nothing: the next RecheckStreams tries again.
func (s *Service) cutUngranted(ctx context.Context, user string) {
	var keys []heldKey
	for _, k := range s.streams.Keys() {
		if k.user == user && k.need.Perm != "" {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recheckTimeout)
	defer cancel()
	grants, err := s.loadGrants(ctx, user)
	if ctx.Err() != nil {
		return // a read cut short says nothing; the next RecheckStreams reads again
	}
	if err != nil {
		s.log.Warn("streams of a user whose role was revoked not checked; the next check will", "user", user, "err", err)
		return
	}
	s.cutUnlessGranted(keys, grants)
}

// cutUnlessGranted ends the streams of keys (all of one user) whose need
// grants do not give, with the refusal a new call would get.
func (s *Service) cutUnlessGranted(keys []heldKey, grants []principal.Grant) {
	for _, k := range keys {
		p := principal.Principal{Kind: principal.Operator, Name: k.user, Grants: grants, SessionID: k.session}
		if err := k.need.Check(p); err != nil {
			s.streams.Cut(func(h heldKey) bool { return h == k }, func(heldKey) error { return err })
		}
	}
}

// RecheckStreams ends the held streams whose session is no longer valid,
// whose user (by certificate) is disabled, or whose user's grants no
// longer give the permission the stream needed, reading each distinct
// session and user once, within recheckTimeout. One that cannot be read
// now (the store is down or slow) keeps its streams until a later check.
func (s *Service) RecheckStreams(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, recheckTimeout)
	defer cancel()
	keys := s.streams.Keys()
	checked := map[heldKey]bool{}  // by user and session only
	var needs map[string][]heldKey // streams that need a permission, by user
	for _, k := range keys {
		if k.need.Perm != "" {
			if needs == nil {
				needs = map[string][]heldKey{}
			}
			needs[k.user] = append(needs[k.user], k)
		}
		who := heldKey{user: k.user, session: k.session}
		if checked[who] {
			continue
		}
		checked[who] = true
		var err error
		if k.session != "" {
			err = s.sessionValid(ctx, k.session, k.user)
		} else {
			err = s.certUserValid(ctx, k.user)
		}
		if ctx.Err() != nil {
			return // a read cut short says nothing (some drivers answer "no rows")
		}
		if status.Code(err) == codes.Unauthenticated {
			s.streams.Cut(func(h heldKey) bool { return h.user == who.user && h.session == who.session }, func(heldKey) error { return err })
		}
	}
	for user, keys := range needs {
		grants, err := s.loadGrants(ctx, user)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			continue
		}
		s.cutUnlessGranted(keys, grants)
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
