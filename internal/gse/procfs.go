package gse

import (
	"bytes"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/croupier/croupier/internal/fieldlimit"
)

// ReadProcessInfo is the default of Config.ProcessInfo.
func ReadProcessInfo(pid int) (startTicks uint64, alive bool) { return procInfo(pid) }

// procInfo reads /proc/<pid>/stat: whether the process exists (and is not
// a zombie) and its start time in clock ticks since boot. A pid reused by
// a later process has another start time, which is how adoption after an
// agent restart tells "still our game" from "someone else now".
func procInfo(pid int) (startTicks uint64, alive bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	fields, ok := statFields(b)
	if !ok || len(fields) < 20 {
		return 0, false
	}
	if string(fields[0]) == "Z" || string(fields[0]) == "X" { // zombie or dead: exited
		return 0, false
	}
	// fields[0] is field 3 (state); starttime is field 22.
	st, err := strconv.ParseUint(string(fields[19]), 10, 64)
	if err != nil {
		return 0, false
	}
	return st, true
}

// parentPID returns the parent pid from /proc/<pid>/stat, or 0.
func parentPID(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	fields, ok := statFields(b)
	if !ok || len(fields) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(string(fields[1]))
	return ppid
}

// statFields splits /proc/<pid>/stat after the command name, which is in
// parentheses and may itself contain spaces and parentheses.
func statFields(b []byte) ([][]byte, bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 > len(b) {
		return nil, false
	}
	return bytes.Fields(b[i+2:]), true
}

// processCwd returns the working directory of pid, or "".
func processCwd(pid int) string {
	d, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd")
	if err != nil {
		return ""
	}
	return d
}

// Environment variables the agent sets on every process it launches, so
// that a restarted agent finds the ones it launched but never recorded (a
// crash between the exec and the state file's write): the data directory
// of the agent (its gse directory), the process's slot and its fleet.
const (
	envAgentDir = "CROUPIER_AGENT_DIR"
	envSlot     = "CROUPIER_SLOT"
	envFleetID  = "CROUPIER_FLEET_ID"
)

// launchedProc is a running process found by findLaunched.
type launchedProc struct {
	pid        int
	startTicks uint64
	fleetID    string
	slot       string
	launchPath string // argv[0], which the agent sets to the launch path
}

// maxEnviron bounds what findLaunched reads of a process's environment.
const maxEnviron = 1 << 20

// findLaunched lists the running processes that an agent on gseDir may
// have launched: process-group leaders (the agent starts each process in
// a group of its own) of the agent's own user whose initial environment
// names gseDir and a slot. Children of a launched process inherit that
// environment, so a slot may have several; the caller picks. Only the
// agent's user's processes are read: another user's could name any fleet
// and slot, and reading their environment (as root may) could block
// behind a hung one.
func findLaunched(gseDir string) []launchedProc {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	uid := uint32(os.Geteuid())
	wantDir := []byte(envAgentDir + "=" + gseDir)
	var out []launchedProc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 1 {
			continue
		}
		if info, err := e.Info(); err != nil {
			continue
		} else if st, ok := info.Sys().(*syscall.Stat_t); !ok || st.Uid != uid {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		fields, ok := statFields(stat)
		// fields[0] is the state, [2] the process group, [19] the start time.
		if !ok || len(fields) < 20 || string(fields[0]) == "Z" || string(fields[2]) != e.Name() {
			continue
		}
		env, err := readLimited("/proc/"+e.Name()+"/environ", maxEnviron)
		if err != nil || !bytes.Contains(env, wantDir) {
			continue
		}
		slot, fleetID, ok := launchedBy(env, gseDir)
		if !ok {
			continue
		}
		ticks, err := strconv.ParseUint(string(fields[19]), 10, 64)
		if err != nil {
			continue
		}
		argv0 := ""
		if cmdline, err := readLimited("/proc/"+e.Name()+"/cmdline", 4096); err == nil {
			argv0, _, _ = strings.Cut(string(cmdline), "\x00")
		}
		out = append(out, launchedProc{pid: pid, startTicks: ticks, fleetID: fleetID, slot: slot, launchPath: argv0})
	}
	return out
}

// launchedBy reads the slot and fleet from a process's environment (NUL
// separated) when it names gseDir as its agent's directory.
func launchedBy(env []byte, gseDir string) (slot, fleetID string, ok bool) {
	dir := ""
	for kv := range bytes.SplitSeq(env, []byte{0}) {
		k, v, _ := bytes.Cut(kv, []byte{'='})
		switch string(k) {
		case envAgentDir:
			dir = string(v)
		case envSlot:
			slot = string(v)
		case envFleetID:
			fleetID = string(v)
		}
	}
	// A slot key is "<fleet>/<entry>/<spec hash>/<ordinal>" (desiredSlots):
	// anything far longer was not set by an agent.
	ok = dir == gseDir && slot != "" && fleetID != "" && len(fleetID) <= fieldlimit.MaxIDBytes && len(slot) <= maxSlotKey
	return slot, fleetID, ok
}

// maxSlotKey bounds a slot key read from a process's environment: a fleet
// id (fieldlimit.MaxIDBytes) and three short fields.
const maxSlotKey = fieldlimit.MaxIDBytes + 128

// readLimited reads at most n bytes of the file at path.
func readLimited(path string, n int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, n))
}
