package cli

import (
	"path/filepath"
	"strings"
	"testing"
)

// Two embedded NATS servers must not share a JetStream directory: the
// second lock on the same file fails with a message naming it, and the
// file can be locked again once released.
func TestLockFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "nats.lock")
	unlock, err := lockFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockFile(path); err == nil || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("second lock: %v, want locked by another process", err)
	}
	unlock()
	unlock2, err := lockFile(path)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	unlock2()
}
