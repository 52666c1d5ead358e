// Package secfile keeps files that hold secrets (the SQLite database with
// the token signing key, private keys, client profiles with tokens) private
// to their owner: created 0600 whatever the umask, and reported when an
// existing one is readable by others.
package secfile

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
)

// Mode is the mode of a secret file.
const Mode fs.FileMode = 0o600

// Create makes sure path exists, creating it empty with Mode if it does not;
// an existing file is left alone (see Check). Use it before handing the path
// to code that would create the file with a wider mode (SQLite uses 0644).
func Create(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, Mode)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	// The umask only removes bits, but a chmod also covers file systems
	// that apply their own default.
	if err := f.Chmod(Mode); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// Exposed reports whether the file at path is readable or writable by its
// group or others; a missing file is not.
func Exposed(path string) (fs.FileMode, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, false
	}
	return fi.Mode().Perm(), fi.Mode().Perm()&0o077 != 0
}

// Check logs a warning naming each existing file in paths that is
// accessible to its group or others, with the command that fixes it. It
// does not change the mode itself: the operator may have a reason, and
// should know either way.
func Check(log *slog.Logger, paths ...string) {
	for _, p := range paths {
		if mode, bad := Exposed(p); bad {
			log.Warn("a file holding secrets is accessible to other users",
				"path", p, "mode", fmt.Sprintf("%04o", mode), "fix", "chmod 600 "+p)
		}
	}
}
