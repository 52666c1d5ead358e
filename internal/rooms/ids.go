package rooms

import (
	"fmt"

	gonanoid "github.com/matoous/go-nanoid/v2"
)

// idLen is the length of every id the rooms system hands out (nanoid(12),
// as SyncTV's seed writes them).
const idLen = 12

func newID() (string, error) {
	id, err := gonanoid.New(idLen)
	if err != nil {
		return "", fmt.Errorf("rooms: new id: %w", err)
	}
	return id, nil
}

// validID reports whether s looks like one of our ids, so that lookups of
// garbage fail with INVALID_ARGUMENT before touching the database.
func validID(s string) bool {
	if len(s) != idLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
