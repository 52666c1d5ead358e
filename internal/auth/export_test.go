package auth

// HeldStreams is how many streams HoldStream tracks now.
func (s *Service) HeldStreams() int {
	s.streamsMu.Lock()
	defer s.streamsMu.Unlock()
	return len(s.streams)
}
