package launchpath_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/croupier/croupier/internal/gse/launchpath"
)

func TestResolve(t *testing.T) {
	root := t.TempDir()
	builds := filepath.Join(root, "builds")
	outside := filepath.Join(root, "outside")
	for _, d := range []string{filepath.Join(builds, "game"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(p, []byte("#!/bin/sh\nexit 0\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, p string) {
		t.Helper()
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	game := filepath.Join(builds, "game", "server")
	write(game, 0o755)
	write(filepath.Join(builds, "game", "data.txt"), 0o644)
	write(filepath.Join(outside, "tool"), 0o755)
	link("/bin/sh", filepath.Join(builds, "sh"))                                // symlink escape to a system binary
	link(filepath.Join(outside, "tool"), filepath.Join(builds, "tool"))         // symlink escape to a sibling
	link(outside, filepath.Join(builds, "outdir"))                              // a directory symlink that escapes
	link(filepath.Join(builds, "game", "server"), filepath.Join(builds, "cur")) // symlink inside: fine
	link(builds, filepath.Join(root, "alias"))                                  // the build dir through an alias

	dirs, err := launchpath.Dirs([]string{builds, filepath.Join(root, "alias"), filepath.Join(root, "not-yet")})
	if err != nil {
		t.Fatal(err)
	}

	ok := map[string]string{
		"executable under a build dir": game,
		"symlink that stays inside":    filepath.Join(builds, "cur"),
		"through an aliased build dir": filepath.Join(root, "alias", "game", "server"),
	}
	for name, p := range ok {
		t.Run("allowed/"+name, func(t *testing.T) {
			got, err := launchpath.Resolve(p, dirs)
			if err != nil {
				t.Fatalf("Resolve(%s): %v", p, err)
			}
			if got != game {
				t.Fatalf("Resolve(%s) = %s, want the real file %s", p, got, game)
			}
		})
	}

	refused := []struct {
		name, path, want string
		outside          bool
	}{
		{"outside every build dir", "/bin/sh", "outside the build directories", true},
		{"symlink to /bin/sh", filepath.Join(builds, "sh"), "resolves to", true},
		{"symlink to a sibling dir", filepath.Join(builds, "tool"), "resolves to", true},
		{"through an escaping dir link", filepath.Join(builds, "outdir", "tool"), "resolves to", true},
		{"dot-dot out of the dir", builds + "/../outside/tool", `must not contain ".."`, false},
		{"dot-dot inside the dir", builds + "/game/../game/server", `must not contain ".."`, false},
		{"prefix of a dir name", builds + "x/server", "outside the build directories", true},
		{"the build dir itself", builds, "outside the build directories", true},
		{"relative", "game/server", "must be absolute", false},
		{"bare name found on PATH", "sh", "must be absolute", false},
		{"not clean", builds + "//game/server", "not in clean form", false},
		{"non-executable", filepath.Join(builds, "game", "data.txt"), "not executable", false},
		{"a directory", filepath.Join(builds, "game"), "not a regular file", false},
		{"missing", filepath.Join(builds, "game", "nope"), "no such file", false},
		{"empty", "", "empty", false},
		{"NUL", builds + "/game/server\x00x", "NUL", false},
		{"too long", "/" + strings.Repeat("a", launchpath.MaxBytes), "at most 1024", false},
	}
	for _, c := range refused {
		t.Run("refused/"+c.name, func(t *testing.T) {
			got, err := launchpath.Resolve(c.path, dirs)
			if err == nil {
				t.Fatalf("Resolve(%q) = %s, want an error", c.path, got)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Resolve(%q): %v; want it to say %q", c.path, err, c.want)
			}
			if errors.Is(err, launchpath.ErrOutside) != c.outside {
				t.Fatalf("Resolve(%q): errors.Is(ErrOutside) = %v, want %v (%v)", c.path, !c.outside, c.outside, err)
			}
			if len(err.Error()) > 1024 {
				t.Fatalf("error quotes too much: %d bytes", len(err.Error()))
			}
		})
	}

	t.Run("no build dirs", func(t *testing.T) {
		if _, err := launchpath.Resolve(game, nil); !errors.Is(err, launchpath.ErrOutside) {
			t.Fatalf("Resolve without build dirs: %v, want ErrOutside", err)
		}
	})
}

func TestWithin(t *testing.T) {
	dirs := []string{"/srv/builds", "/opt/game"}
	for p, want := range map[string]bool{
		"/srv/builds/a":       true,
		"/opt/game/bin/x":     true,
		"/srv/builds":         false,
		"/srv/buildsx/a":      false,
		"/srv/a":              false,
		"/bin/sh":             false,
		"/srv/builds/../x/sh": true, // lexical only: CheckSyntax refuses ".."
	} {
		if got := launchpath.Within(p, dirs); got != want {
			t.Errorf("Within(%s) = %v, want %v", p, got, want)
		}
	}
	if !launchpath.Within("/bin/sh", []string{"/"}) {
		t.Error(`Within("/bin/sh", ["/"]) = false`)
	}
}

func TestDirsLimits(t *testing.T) {
	if _, err := launchpath.Dirs(make([]string, launchpath.MaxDirs+1)); err == nil {
		t.Fatal("Dirs accepted more than MaxDirs directories")
	}
	if _, err := launchpath.Dirs([]string{""}); err == nil {
		t.Fatal("Dirs accepted an empty directory")
	}
	got, err := launchpath.Dirs([]string{"rel"})
	if err != nil || len(got) != 1 || !filepath.IsAbs(got[0]) {
		t.Fatalf("Dirs(rel) = %v, %v; want one absolute path", got, err)
	}
}
