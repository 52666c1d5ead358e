package auth

import (
	"context"
	"errors"

	"github.com/croupier/croupier/internal/principal"
	"github.com/croupier/croupier/internal/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A stream authenticated by a bearer token is checked when it opens, as
// every call is; a watch may then stay open for hours. HoldStream tracks
// it, so that it ends once its login session is revoked (logout, refresh
// token reuse, password change) or its user disabled: at once when that
// happens through this node, and at the next RecheckStreams otherwise (the
// server runs it every 10 s, so a change made through another node reaches
// this node's streams within that). The stream's expiry is not checked
// again: a watch outlives its access token, as it outlives a certificate's
// refresh.

// heldStream is a stream HoldStream tracks.
type heldStream struct {
	session, user string
	cancel        context.CancelCauseFunc
}

// HoldStream tracks a stream of p until release is called. The context it
// returns is cancelled when p's login session is found no longer valid,
// with the UNAUTHENTICATED error a new call would get as its cause
// (context.Cause). A caller that is not token-authenticated is not held.
func (s *Service) HoldStream(ctx context.Context, p principal.Principal) (_ context.Context, release func()) {
	if p.SessionID == "" {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	h := &heldStream{session: p.SessionID, user: p.Name, cancel: cancel}
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

// RecheckStreams ends the held streams whose session is no longer valid,
// reading each distinct session once. A session that cannot be read (the
// store is down) keeps its streams until a later check.
func (s *Service) RecheckStreams(ctx context.Context) { s.recheckStreams(ctx, "") }

// recheckStreams is RecheckStreams for the streams of user only ("" for
// all), after a change through this node revoked some of user's sessions.
func (s *Service) recheckStreams(ctx context.Context, user string) {
	bySession := map[string][]*heldStream{}
	s.streamsMu.Lock()
	for h := range s.streams {
		if user == "" || h.user == user {
			bySession[h.session] = append(bySession[h.session], h)
		}
	}
	s.streamsMu.Unlock()
	for id, held := range bySession {
		err := s.sessionValid(ctx, id, held[0].user)
		if status.Code(err) != codes.Unauthenticated {
			continue // valid, or not known now
		}
		for _, h := range held {
			h.cancel(err)
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
		return unauthenticated(CodeTokenRevoked, "access token revoked ("+st.Session.RevokeReason+"); log in again")
	case st.UserDisabled:
		return unauthenticated(CodeUserDisabled, "user "+user+" is disabled")
	}
	return nil
}
