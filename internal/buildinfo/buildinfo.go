// Package buildinfo holds the version stamped into the binary at link time.
package buildinfo

import "runtime/debug"

// Version and Commit are set with -ldflags "-X ...". When unset they fall back
// to the module build info so `go install` builds still report something real.
var (
	Version = ""
	Commit  = ""
)

// String returns "version (commit)".
func String() string {
	v, c := Version, Commit
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && c == "" {
				c = s.Value
			}
		}
	}
	if v == "" || v == "(devel)" {
		v = "dev"
	}
	if c == "" {
		return v
	}
	if len(c) > 12 {
		c = c[:12]
	}
	return v + " (" + c + ")"
}
