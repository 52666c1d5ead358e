package store_test

import (
	"bytes"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/croupier/croupier/internal/store"
)

// Regression (issue 9, defect 4): the SQLite file, which holds the token
// signing key, was created 0644. Not parallel: the umask is process-wide.
func TestSQLiteFilesArePrivateWhateverTheUmask(t *testing.T) {
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })

	dir := filepath.Join(t.TempDir(), "data", "nested")
	path := filepath.Join(dir, "croupier.db")
	s, err := store.Open(ctxT(t), store.Config{Driver: store.DriverSQLite, DSN: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Migrate(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := s.Scopes().Declare(ctxT(t), "demo", "dev"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", filepath.Base(p), fi.Mode().Perm())
		}
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir: %v, %v; want mode 0700", fi.Mode(), err)
	}
}

func TestOpenWarnsAboutReadableDatabase(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "croupier.db")
	s, err := store.Open(ctxT(t), store.Config{Driver: store.DriverSQLite, DSN: path})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	s, err = store.Open(ctxT(t), store.Config{Driver: store.DriverSQLite, DSN: path, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	out := logs.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "path="+path) || !strings.Contains(out, `fix="chmod 600 `+path+`"`) ||
		!strings.Contains(out, "mode=0644") {
		t.Fatalf("no warning naming the file and the fix; logs:\n%s", out)
	}
	// The mode is reported, not changed behind the operator's back.
	if fi, _ := os.Stat(path); fi.Mode().Perm() != fs.FileMode(0o644) {
		t.Fatalf("mode changed to %04o", fi.Mode().Perm())
	}
}
