package secfile_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/croupier/croupier/internal/secfile"
)

// Not parallel: the umask is process-wide.
func TestCreateIsPrivateWhateverTheUmask(t *testing.T) {
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })
	dir := t.TempDir()
	p := filepath.Join(dir, "secret")
	if err := secfile.Create(p); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("created mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	// An existing file keeps its content and mode; Check reports it.
	wide := filepath.Join(dir, "wide")
	if err := os.WriteFile(wide, []byte("keep"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := secfile.Create(wide); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(wide); string(b) != "keep" {
		t.Fatalf("existing file changed: %q", b)
	}
	var logs bytes.Buffer
	secfile.Check(slog.New(slog.NewTextHandler(&logs, nil)), p, wide, filepath.Join(dir, "missing"))
	out := logs.String()
	if strings.Count(out, "level=WARN") != 1 || !strings.Contains(out, "path="+wide) || !strings.Contains(out, "mode=0640") ||
		!strings.Contains(out, `fix="chmod 600 `+wide+`"`) {
		t.Fatalf("want one warning about %s; logs:\n%s", wide, out)
	}
	if err := secfile.Create(filepath.Join(dir, "no", "such", "dir", "f")); err == nil {
		t.Fatal("Create in a missing directory succeeded")
	}
}
