package cli

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Regression (issue 9, defect 4): a profile holding tokens kept the mode of
// the file it replaced. Not parallel: the umask is process-wide.
func TestProfileIsPrivateWhateverTheUmask(t *testing.T) {
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })

	path := filepath.Join(t.TempDir(), "client.yaml")
	if err := os.WriteFile(path, []byte("address: 127.0.0.1:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	if _, err := loadProfile(path, log); err != nil {
		t.Fatal(err)
	}
	if out := logs.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, `fix="chmod 600 `+path+`"`) {
		t.Fatalf("no warning about the readable profile; logs:\n%s", out)
	}
	wantMode := func(what string) {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: profile mode %v (%v), want 0600", what, fi.Mode().Perm(), err)
		}
	}
	if err := writeProfile(path, &Profile{Address: "127.0.0.1:1", Token: "secret"}); err != nil {
		t.Fatal(err)
	}
	wantMode("writeProfile over a 0644 file")
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := saveTokens(path, "a", "r"); err != nil {
		t.Fatal(err)
	}
	wantMode("saveTokens over a 0666 file")
	logs.Reset()
	if _, err := loadProfile(path, log); err != nil || logs.Len() != 0 {
		t.Fatalf("private profile: %v, logs %q", err, logs.String())
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}
