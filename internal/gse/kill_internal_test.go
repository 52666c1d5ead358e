package gse

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// TestKillSkipsReusedPIDs: a pid that names another process than the one
// recorded (alive with another start time) is never killed: after the game
// exits its pid may be given to an unrelated process — the launched
// wrapper's, the game's own behind a wrapper, or a process started by
// hand. A launched process's group is killed also when its leader is gone
// (its other members are still its children); a process the agent did not
// launch is killed only while it is the one recorded.
func TestKillSkipsReusedPIDs(t *testing.T) {
	t.Parallel()
	const wrapper, game = 4_000_001, 4_000_002
	for _, tc := range []struct {
		name                string
		managed             bool
		wrapperNow, gameNow uint64 // start ticks the pids have now (0: gone)
		want                []int
	}{
		{"both still the recorded processes", true, 10, 20, []int{-wrapper, game}},
		{"the wrapper's pid reused", true, 11, 20, []int{game}},
		{"the game's pid reused", true, 10, 21, []int{-wrapper}},
		{"the wrapper gone: its group still", true, 0, 0, []int{-wrapper}},
		{"not launched, still the recorded process", false, 10, 20, []int{wrapper, game}},
		{"not launched, gone", false, 0, 0, nil},
		{"not launched, reused", false, 11, 21, nil},
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
			p := &proc{id: "a1.4000001.10", pid: wrapper, startTicks: 10, gamePID: game, gameTicks: 20, managed: tc.managed, status: statusActive}
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

// TestLaunchedBy: a process counts as launched from a data dir only when
// its environment names that very dir, a slot and a fleet of bounded
// length.
func TestLaunchedBy(t *testing.T) {
	t.Parallel()
	env := func(kv ...string) []byte { return []byte(strings.Join(kv, "\x00") + "\x00") }
	const dir = "/var/lib/croupier/gse"
	for _, tc := range []struct {
		name string
		env  []byte
		ok   bool
	}{
		{"launched here", env("PATH=/bin", envAgentDir+"="+dir, envSlot+"=f1/0/ab12/0", "CROUPIER_FLEET_ID=f1"), true},
		{"another agent's dir sharing a prefix", env(envAgentDir+"="+dir+"2", envSlot+"=f1/0/ab12/0", "CROUPIER_FLEET_ID=f1"), false},
		{"no slot", env(envAgentDir+"="+dir, "CROUPIER_FLEET_ID=f1"), false},
		{"no fleet", env(envAgentDir+"="+dir, envSlot+"=f1/0/ab12/0"), false},
		{"a slot no agent wrote", env(envAgentDir+"="+dir, envSlot+"="+strings.Repeat("s", maxSlotKey+1), "CROUPIER_FLEET_ID=f1"), false},
	} {
		slot, fleet, ok := launchedBy(tc.env, dir)
		if ok != tc.ok || (ok && (slot != "f1/0/ab12/0" || fleet != "f1")) {
			t.Errorf("%s: launchedBy = %q, %q, %v; want ok %v", tc.name, slot, fleet, ok, tc.ok)
		}
	}
}
