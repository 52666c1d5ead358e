package rooms

import (
	"context"

	"github.com/croupier/croupier/internal/ratelimit"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Throttles are the service's player login and room password throttles.
func (s *Service) Throttles() (logins, roomPasswords *ratelimit.LoginThrottle) {
	return s.cred.Logins, s.roomPasswords
}

// RoomPasswordKey is the room password throttle's key of c in roomID.
func RoomPasswordKey(roomID string, c Caller) string { return roomPasswordKey(roomID, c) }

// PlaylistReads is how many playlists Deliver has read for playlist
// changes.
func (s *Service) PlaylistReads() int { return int(testutil.ToFloat64(s.m.playlistReads)) }

// Load makes the room live on this node, as an open stream does, until
// release.
func (s *Service) Load(ctx context.Context, roomID string) (release func(), err error) {
	r, err := s.hub.acquire(ctx, roomID)
	if err != nil {
		return nil, err
	}
	return func() { s.hub.release(r) }, nil
}
