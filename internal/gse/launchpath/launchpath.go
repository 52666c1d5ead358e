// Package launchpath decides which executables an agent may start for a
// fleet: regular, executable files under the agent's build directories,
// judged both as written and after symlinks are resolved (GameLift and GSE
// only launch from the uploaded build, /local/game).
//
// The lexical half (CheckSyntax, Within) is shared with the server, which
// refuses a fleet whose launch path lies outside the build directories its
// agents report; the agent runs Resolve right before every exec and starts
// the resolved file, so a path swapped between the server's check and the
// launch is still refused.
package launchpath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Limits on launch paths and build directories.
const (
	MaxBytes = 1024 // a launch path or build directory
	MaxDirs  = 16   // build directories of one agent
	// quoteBytes is how much of a bad path an error message quotes.
	quoteBytes = 128
)

// ErrOutside marks a path that is, as written or after symlinks, outside
// every build directory.
var ErrOutside = errors.New("outside the build directories")

// CheckSyntax checks what can be decided without the agent's file system:
// an absolute, clean path without ".." elements, at most MaxBytes.
func CheckSyntax(p string) error {
	switch {
	case p == "":
		return errors.New("launch path is empty")
	case len(p) > MaxBytes:
		return fmt.Errorf("launch path %s is %d bytes; at most %d are allowed", Quote(p), len(p), MaxBytes)
	case strings.ContainsRune(p, 0):
		return fmt.Errorf("launch path %s contains a NUL byte", Quote(p))
	case !filepath.IsAbs(p):
		return fmt.Errorf("launch path %s must be absolute (an executable under one of the agent's build directories)", Quote(p))
	case slices.Contains(strings.Split(p, "/"), ".."):
		return fmt.Errorf("launch path %s must not contain \"..\"", Quote(p))
	case filepath.Clean(p) != p:
		return fmt.Errorf("launch path %s is not in clean form; write %s", Quote(p), Quote(filepath.Clean(p)))
	}
	return nil
}

// Within reports whether the clean absolute path p lies strictly inside one
// of dirs (clean absolute directories). It is a lexical test; Resolve also
// applies it after resolving symlinks.
func Within(p string, dirs []string) bool {
	for _, d := range dirs {
		if d == "/" && p != "/" || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

// Dirs prepares an agent's configured build directories: each is made
// absolute and clean; one that exists is also listed in its resolved form
// (symlinks followed), so a path may be written either way. Directories
// that do not exist yet are kept (a build may be deployed later).
func Dirs(configured []string) ([]string, error) {
	if len(configured) > MaxDirs {
		return nil, fmt.Errorf("%d build directories; at most %d are allowed", len(configured), MaxDirs)
	}
	var out []string
	for _, d := range configured {
		if d == "" || len(d) > MaxBytes || strings.ContainsRune(d, 0) {
			return nil, fmt.Errorf("build directory %s: give a non-empty path of at most %d bytes", Quote(d), MaxBytes)
		}
		abs, err := filepath.Abs(d)
		if err != nil {
			return nil, fmt.Errorf("build directory %s: %w", Quote(d), err)
		}
		out = append(out, abs)
		if r, err := filepath.EvalSymlinks(abs); err == nil {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Resolve is the agent's check before an exec: p must pass CheckSyntax, lie
// under one of dirs (prepared by Dirs) as written and after symlinks, and
// name a regular file with an execute bit. It returns the resolved path,
// which is what the agent starts.
func Resolve(p string, dirs []string) (string, error) {
	if err := CheckSyntax(p); err != nil {
		return "", err
	}
	if len(dirs) == 0 {
		return "", fmt.Errorf("launch path %s: %w: the agent has no build directories (build_dirs)", Quote(p), ErrOutside)
	}
	if !Within(p, dirs) {
		return "", fmt.Errorf("launch path %s is %w (%s)", Quote(p), ErrOutside, strings.Join(dirs, ", "))
	}
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", fmt.Errorf("launch path %s: %w", Quote(p), trimPathErr(err))
	}
	if !Within(r, dirs) {
		return "", fmt.Errorf("launch path %s resolves to %s, %w (%s)", Quote(p), Quote(r), ErrOutside, strings.Join(dirs, ", "))
	}
	fi, err := os.Stat(r)
	if err != nil {
		return "", fmt.Errorf("launch path %s: %w", Quote(p), trimPathErr(err))
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("launch path %s is not a regular file (%s)", Quote(p), fi.Mode().Type())
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("launch path %s is not executable (mode %s)", Quote(p), fi.Mode().Perm())
	}
	return r, nil
}

// Quote quotes at most a short prefix of s for an error message.
func Quote(s string) string {
	if len(s) <= quoteBytes {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q… (%d bytes)", s[:quoteBytes], len(s))
}

// trimPathErr drops the path an *os.PathError repeats.
func trimPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// CheckEnvName refuses the environment variables a fleet may not set on
// the processes it launches: those that make the dynamic loader, a shell
// or a common language runtime load or run other code (LD_PRELOAD,
// BASH_ENV, NODE_OPTIONS, ...), and those the agent sets itself
// (CROUPIER_*, GSE_*). Without it the confinement of launch paths to the
// build directories could be bypassed: a wrapper script with BASH_ENV, a
// game with LD_PRELOAD, runs whatever the fleet's author names.
func CheckEnvName(name string) error {
	for _, p := range deniedEnvPrefixes {
		if strings.HasPrefix(name, p) {
			return fmt.Errorf("environment variable %s is not allowed: names starting with %s are the loader's, a shell's or the agent's", name, p)
		}
	}
	if slices.Contains(deniedEnvNames, name) {
		return fmt.Errorf("environment variable %s is not allowed: it makes a loader, shell or language runtime run other code than the launched executable", name)
	}
	return nil
}

// deniedEnvPrefixes and deniedEnvNames are CheckEnvName's list (docs/fleet.md,
// Trust model).
var (
	deniedEnvPrefixes = []string{"LD_", "BASH_FUNC_", "CROUPIER_", "GSE_", "DYLD_"}
	deniedEnvNames    = []string{
		// Shells.
		"BASH_ENV", "ENV", "PATH", "IFS", "SHELLOPTS", "BASHOPTS", "PS4", "CDPATH", "GLOBIGNORE", "PROMPT_COMMAND",
		// glibc.
		"GCONV_PATH", "LOCPATH", "NLSPATH", "HOSTALIASES", "RESOLV_HOST_CONF", "GLIBC_TUNABLES", "MALLOC_TRACE",
		// Language runtimes.
		"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONINSPECT", "PERL5LIB", "PERLLIB", "PERL5OPT", "PERL5DB",
		"RUBYOPT", "RUBYLIB", "NODE_OPTIONS", "NODE_PATH", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS",
		"CLASSPATH", "LUA_PATH", "LUA_CPATH", "LUA_INIT", "DOTNET_STARTUP_HOOKS", "CORECLR_ENABLE_PROFILING",
		"CORECLR_PROFILER", "CORECLR_PROFILER_PATH", "MONO_ENV_OPTIONS", "MONO_PATH",
	}
)
