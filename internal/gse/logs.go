package gse

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/croupier/croupier/internal/gse/launchpath"
)

// logDir holds the logs collected from an ended process.
func (a *Agent) logDir(p *proc) string {
	return filepath.Join(a.gseDir(), "logs", sanitize(p.id))
}

// collectedPath is where log file i of p is kept after p ended.
func (a *Agent) collectedPath(p *proc, i int) string {
	return filepath.Join(a.logDir(p), fmt.Sprintf("%d-%s", i, sanitize(filepath.Base(p.logFiles[i]))))
}

// collectLogs copies the files a process declared in logPathsToUpload into
// the data dir when it ends, so they stay readable through the server
// (GetProcessLog) after the next process of the slot overwrites them. Each
// copy keeps at most MaxLogCopyBytes, from the end of the file. Directories
// and missing files are skipped.
func (a *Agent) collectLogs(p *proc) {
	if a.cfg.DataDir == "" || len(p.logFiles) == 0 {
		return
	}
	if err := os.MkdirAll(a.logDir(p), 0o750); err != nil {
		a.log.Warn("collecting logs", "process", p.id, "err", err)
		return
	}
	for i, src := range p.logFiles {
		if err := copyTail(src, a.cfg.BuildDirs, a.collectedPath(p, i), a.cfg.MaxLogCopyBytes); err != nil {
			a.log.Warn("collecting a log file", "process", p.id, "path", src, "err", err)
		}
	}
}

func copyTail(src string, dirs []string, dst string, limit int64) error {
	in, err := openLog(src, dirs)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", src)
	}
	if st.Size() > limit {
		if _, err := in.Seek(st.Size()-limit, io.SeekStart); err != nil {
			return err
		}
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, io.LimitReader(in, limit)); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

// errNotRegular marks a declared log that is a FIFO, device, directory or
// socket: never read.
var errNotRegular = errors.New("not a regular file")

// openLog opens a log file for reading. With dirs, the file opened must lie
// under one of them after symlinks are resolved (what the open descriptor
// names, so a link swapped after a check cannot redirect the read):
// declared log paths are checked when declared and again here.
func openLog(path string, dirs []string) (*os.File, error) {
	if dirs == nil {
		return os.Open(path)
	}
	// Non-blocking: a FIFO planted as a log must not hang the agent in open.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	switch {
	case err != nil:
		_ = f.Close()
		return nil, err
	case !st.Mode().IsRegular():
		_ = f.Close()
		return nil, fmt.Errorf("%s: %w (%s)", launchpath.Quote(path), errNotRegular, st.Mode().Type())
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Nlink > 1 {
		// A hard link into a build directory would pass the path check.
		_ = f.Close()
		return nil, fmt.Errorf("%s has %d hard links, %w (a log must be the file itself)", launchpath.Quote(path), sys.Nlink, launchpath.ErrOutside)
	}
	real, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
	if err != nil { // no /proc: resolve the name instead
		real, err = filepath.EvalSymlinks(path)
	}
	if err != nil || !launchpath.Within(real, dirs) {
		_ = f.Close()
		return nil, fmt.Errorf("%s resolves to %s, %w (%s)", launchpath.Quote(path), launchpath.Quote(real), launchpath.ErrOutside, strings.Join(dirs, ", "))
	}
	return f, nil
}

// dropLogs deletes what the agent kept of processes past LogRetention.
func (a *Agent) dropLogs(ps []*proc) {
	for _, p := range ps {
		if a.cfg.DataDir == "" {
			return
		}
		_ = os.RemoveAll(a.logDir(p))
		if p.stdoutPath != "" && strings.HasPrefix(p.stdoutPath, a.gseDir()) {
			_ = os.Remove(p.stdoutPath)
		}
	}
}

// sanitize keeps a name usable as one path element.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == 0 || r == ':' {
			return '_'
		}
		return r
	}, s)
}
