package agent

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/tunnel"
)

// TestSDKPortRefusesOtherUsers connects to a real agent's SDK port from a
// process of another user (nobody; starting it needs root) and from this
// process's user: the agent closes the first at once and keeps the second
// open waiting for its hello.
func TestSDKPortRefusesOtherUsers(t *testing.T) {
	t.Parallel()
	if os.Getuid() != 0 {
		t.Skip("starting a process as another user needs root")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash here")
	}
	a := startSDKAgent(t)
	_, port, _ := net.SplitHostPort(a.SDKAddr())
	// Opens the connection, sends the conn transport's preface and waits
	// up to 3 s for a byte: exit status 1 when the agent closes the
	// connection, above 128 when the wait times out.
	script := `trap '' PIPE; exec 3<>/dev/tcp/127.0.0.1/` + port + `; printf '` + tunnel.ConnPreface[:len(tunnel.ConnPreface)-1] + `\n' >&3; read -t 3 -u 3 _; exit $?`
	run := func(uid uint32) (int, time.Duration) {
		cmd := exec.Command("bash", "-c", script)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		start := time.Now()
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Errorf("uid %d: %v", uid, err)
			return -1, 0
		}
		return cmd.ProcessState.ExitCode(), time.Since(start)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if code, took := run(65534); code != 1 {
			t.Errorf("another user's connection: exit status %d after %s; want 1 (closed by the agent)", code, took)
		}
	})
	wg.Go(func() {
		if code, took := run(uint32(os.Getuid())); code <= 128 {
			t.Errorf("the agent's own user's connection: exit status %d after %s; want a timeout (kept open, waiting for the hello)", code, took)
		}
	})
	wg.Wait()
}
