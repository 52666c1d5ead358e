package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestHarnessRuns runs every path of the harness briefly — grpc with both
// floors, and rest; grpc and the floors again with the game server on the
// gRPC stream transport (-sdk-stream) and with the agent on the gRPC stream
// (-agent-transport grpc; the default is the conn transport), the last with every profile written —
// so that a change that breaks one of
// them (a call that fails, a stack that does not come up) fails here rather
// than in the next benchmark run. It measures nothing.
func TestHarnessRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server, an agent, a game server and the floors")
	}
	if err := run("both", 20, 200*time.Millisecond, 4, 2, true, hops{}, profiles{}); err != nil {
		t.Fatal(err)
	}
	if err := run("grpc", 20, 200*time.Millisecond, 4, 2, true, hops{sdkStream: true}, profiles{}); err != nil {
		t.Fatalf("-sdk-stream: %v", err)
	}
	// With every profile asked for: each file is written.
	dir := t.TempDir()
	prof := profiles{cpu: filepath.Join(dir, "cpu"), mem: filepath.Join(dir, "mem"), floorCPU: filepath.Join(dir, "floor"),
		directCPU: filepath.Join(dir, "direct")}
	if err := run("grpc", 20, 200*time.Millisecond, 4, 1, true, hops{agentTransport: "grpc"}, prof); err != nil {
		t.Fatalf("-agent-transport grpc: %v", err)
	}
	for _, f := range []string{prof.cpu, prof.mem, prof.mem + ".base", prof.floorCPU, prof.directCPU} {
		if st, err := os.Stat(f); err != nil || st.Size() == 0 {
			t.Errorf("profile %s: %v (want a non-empty file)", f, err)
		}
	}
}
