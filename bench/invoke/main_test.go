package main

import (
	"testing"
	"time"
)

// TestHarnessRuns runs every path of the harness briefly — grpc with both
// floors, and rest — so that a change that breaks one of them (a call that
// fails, a stack that does not come up) fails here rather than in the next
// benchmark run. It measures nothing.
func TestHarnessRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server, an agent, a game server and the floors")
	}
	if err := run("both", 20, 200*time.Millisecond, 4, true, profiles{}); err != nil {
		t.Fatal(err)
	}
}
