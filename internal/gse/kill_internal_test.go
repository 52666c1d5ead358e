package gse

import (
	"fmt"
	"slices"
	"syscall"
	"testing"
)

// TestKillSkipsReusedPIDs: a process is killed only while its pid still
// names the process recorded (same start time). After the game exits its
// pid may be given to an unrelated process — the launched wrapper's, or
// the game's own behind a wrapper — which must not get the SIGKILL.
func TestKillSkipsReusedPIDs(t *testing.T) {
	t.Parallel()
	const wrapper, game = 4_000_001, 4_000_002
	for _, tc := range []struct {
		name                string
		wrapperNow, gameNow uint64 // start ticks the pids have now (0: gone)
		want                []int
	}{
		{"both still the recorded processes", 10, 20, []int{-wrapper, game}},
		{"the wrapper's pid reused", 11, 20, []int{game}},
		{"the game's pid reused", 10, 21, []int{-wrapper}},
		{"both gone", 0, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var killed []int
			a, err := New(Config{AgentID: "a1", GameID: "g", Env: "e", Upstream: upstreamStub{}, Addr: "127.0.0.1:0",
				ProcessInfo: func(pid int) (uint64, bool) {
					now := map[int]uint64{wrapper: tc.wrapperNow, game: tc.gameNow}[pid]
					return now, now != 0
				},
				Kill: func(pid int, sig syscall.Signal) error {
					if sig != syscall.SIGKILL {
						return fmt.Errorf("signal %v", sig)
					}
					killed = append(killed, pid)
					return nil
				}})
			if err != nil {
				t.Fatal(err)
			}
			p := &proc{id: "a1.4000001.10", pid: wrapper, startTicks: 10, gamePID: game, gameTicks: 20, managed: true, status: statusActive}
			a.mu.Lock()
			a.killLocked(p)
			a.mu.Unlock()
			if !slices.Equal(killed, tc.want) {
				t.Errorf("killed %v, want %v", killed, tc.want)
			}
		})
	}
}

// upstreamStub is an Upstream the test never calls.
type upstreamStub struct{ Upstream }
