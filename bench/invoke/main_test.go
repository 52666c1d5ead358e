package main

import (
	"testing"
	"time"
)

// TestHarnessRuns runs every path of the harness briefly — grpc with both
// floors, and rest; grpc and the floors again with the game server on the
// gRPC stream transport (-sdk-stream) and with the agent on the conn
// transport (-agent-transport conn) — so that a change that breaks one of
// them (a call that fails, a stack that does not come up) fails here rather
// than in the next benchmark run. It measures nothing.
func TestHarnessRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server, an agent, a game server and the floors")
	}
	if err := run("both", 20, 200*time.Millisecond, 4, true, hops{}, profiles{}); err != nil {
		t.Fatal(err)
	}
	if err := run("grpc", 20, 200*time.Millisecond, 4, true, hops{sdkStream: true}, profiles{}); err != nil {
		t.Fatalf("-sdk-stream: %v", err)
	}
	if err := run("grpc", 20, 200*time.Millisecond, 4, true, hops{agentTransport: "conn"}, profiles{}); err != nil {
		t.Fatalf("-agent-transport conn: %v", err)
	}
}
