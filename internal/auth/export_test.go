package auth

// HeldStreams is how many streams HoldStream tracks now.
func (s *Service) HeldStreams() int { return s.streams.Len() }
