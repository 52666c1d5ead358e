package gse

import (
	"bytes"
	"os"
	"strconv"
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
