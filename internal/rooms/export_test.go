package rooms

import "github.com/croupier/croupier/internal/ratelimit"

// Throttles are the service's player login and room password throttles.
func (s *Service) Throttles() (logins, roomPasswords *ratelimit.LoginThrottle) {
	return s.cred.Logins, s.roomPasswords
}

// RoomPasswordKey is the room password throttle's key of c in roomID.
func RoomPasswordKey(roomID string, c Caller) string { return roomPasswordKey(roomID, c) }
