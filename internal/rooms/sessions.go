package rooms

import (
	"context"
	"time"

	"github.com/croupier/croupier/internal/apierr"
)

// A stream is authenticated once, at its hello; a session revoked later
// (Logout, or a refresh token presented again) must still end the streams
// opened with it. On the node that revokes the session they end at once
// (endSession). The other nodes of a gateway tier learn it from the
// database they share: each node re-reads the sessions of its open streams
// every SessionCheck (watchSessions), one query for all of them, and ends
// those revoked. A periodic sweep rather than a check on each client
// message: a stream that only listens sends nothing but pings, and a
// per-message check would put a database read on the chat path.

// defaultSessionCheck is how often a node re-reads the sessions of its
// open streams (Config.SessionCheck).
const defaultSessionCheck = 2 * time.Second

// sessionCheckTimeout bounds one sweep's database read.
const sessionCheckTimeout = 5 * time.Second

// errSessionRevoked is what a call made with a revoked session's token
// gets, and how the session's open streams end.
func errSessionRevoked() error {
	return unauthenticated(apierr.CodeTokenRevoked, "access token revoked (logged out); log in again")
}

// watchSessions ends the streams of revoked sessions every interval until
// stop closes. Started by New, stopped by Close.
func (s *Service) watchSessions(every time.Duration, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			s.checkSessions()
		}
	}
}

// checkSessions reads the sessions of this node's open streams and ends
// the streams of those revoked (or gone).
func (s *Service) checkSessions() {
	ids := s.hub.sessions()
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), sessionCheckTimeout)
	ended, err := s.st.EndedSessions(ctx, ids)
	cancel()
	if err != nil {
		s.log.Warn("sessions of open streams not checked", "streams", len(ids), "err", err)
		return
	}
	for _, sid := range ended {
		s.endSession(sid)
	}
}

// endSession ends this node's streams opened with the session, with
// TOKEN_REVOKED as their last message.
func (s *Service) endSession(sessionID string) {
	if sessionID == "" {
		return
	}
	s.hub.forEach(func(r *liveRoom) {
		for _, st := range r.subs {
			if st.caller.SessionID == sessionID {
				// Close, called by the transport, unregisters it and tells
				// the room it went offline.
				st.kill(errorMessage(errSessionRevoked(), ""))
			}
		}
	})
}

// sessions are the distinct sessions of this node's open streams.
func (h *hub) sessions() []string {
	seen := map[string]bool{}
	var ids []string
	h.forEach(func(r *liveRoom) {
		for _, st := range r.subs {
			if sid := st.caller.SessionID; sid != "" && !seen[sid] {
				seen[sid] = true
				ids = append(ids, sid)
			}
		}
	})
	return ids
}

// forEach runs fn on every live room, each with its lock held.
func (h *hub) forEach(fn func(r *liveRoom)) {
	h.mu.Lock()
	ids := make([]string, 0, len(h.rooms))
	for id := range h.rooms {
		ids = append(ids, id)
	}
	h.mu.Unlock()
	for _, id := range ids {
		h.ifLive(id, fn)
	}
}
