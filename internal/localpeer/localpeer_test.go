package localpeer_test

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/localpeer"
)

// TestLookupOwnConnection looks up real connections of this process, over
// IPv4, IPv6 and IPv4 mapped into an IPv6 listener: the socket is this
// user's and is one of this process's descriptors.
func TestLookupOwnConnection(t *testing.T) {
	t.Parallel()
	for _, network := range []struct{ listen, dial string }{
		{"127.0.0.1:0", "127.0.0.1"},
		{"[::1]:0", "::1"},
		{"[::]:0", "127.0.0.1"},
	} {
		lis, err := net.Listen("tcp", network.listen)
		if err != nil {
			t.Logf("%s: no such listener here (%v)", network.listen, err)
			continue
		}
		defer lis.Close()
		c, err := net.Dial("tcp", net.JoinHostPort(network.dial, strconv.Itoa(lis.Addr().(*net.TCPAddr).Port)))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, sock, err := acceptLookup(t, lis)
		if err != nil {
			t.Fatalf("%s: %v", network.listen, err)
		}
		if sock.UID != os.Getuid() {
			t.Errorf("%s: uid %d, want this process's %d", network.listen, sock.UID, os.Getuid())
		}
		if !holds(t, sock.Inode) {
			t.Errorf("%s: socket inode %s is not one of this process's descriptors", network.listen, sock.Inode)
		}
		// The server's own end is not a client's socket.
		if _, err := localpeer.Lookup(s.LocalAddr(), &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}); err == nil {
			t.Errorf("%s: a connection that does not exist was found", network.listen)
		}
	}
}

// acceptLookup accepts a connection on lis (closed when the test ends) and
// looks up its client's socket.
func acceptLookup(t *testing.T, lis net.Listener) (net.Conn, localpeer.Socket, error) {
	t.Helper()
	s, err := lis.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	sock, err := localpeer.Lookup(s.RemoteAddr(), s.LocalAddr())
	return s, sock, err
}

// holds reports whether this process has the socket inode open.
func holds(t *testing.T, inode string) bool {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		if l, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && l == "socket:["+inode+"]" {
			return true
		}
	}
	return false
}

// asNobody starts bash as user nobody (65534) with script; it needs root
// and bash (with /dev/tcp).
func asNobody(t *testing.T, script string) *exec.Cmd {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("starting a process as another user needs root")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash here")
	}
	cmd := exec.Command("bash", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

const nobody = 65534

// listen listens on loopback and returns the listener and its port.
func listen(t *testing.T) (*net.TCPListener, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lis.Close() })
	l := lis.(*net.TCPListener)
	_ = l.SetDeadline(time.Now().Add(20 * time.Second))
	return l, strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// TestLookupOtherUser connects from a process of another user and finds
// that user's uid.
func TestLookupOtherUser(t *testing.T) {
	t.Parallel()
	lis, port := listen(t)
	asNobody(t, "exec 3<>/dev/tcp/127.0.0.1/"+port+"; read -t 20 -u 3 _")
	_, sock, err := acceptLookup(t, lis)
	if err != nil {
		t.Fatal(err)
	}
	if sock.UID != nobody {
		t.Errorf("uid %d, want %d (the connecting process's user)", sock.UID, nobody)
	}
}

// TestLookupClosedClient: a client that connects, writes and closes
// before the server looks leaves a socket no process holds, which the
// kernel lists as root's. Its owner is unknown, not root.
func TestLookupClosedClient(t *testing.T) {
	t.Parallel()
	lis, port := listen(t)
	cmd := asNobody(t, "exec 3<>/dev/tcp/127.0.0.1/"+port+"; printf 'hello\\n' >&3; exec 3>&-")
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if _, sock, err := acceptLookup(t, lis); err == nil {
		t.Fatalf("a closed client's socket was found: %+v (it must not pass for root's)", sock)
	}
}
