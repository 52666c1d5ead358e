package localpeer

import (
	"encoding/binary"
	"net"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDiagAgreesWithTheTable looks up live connections of this process by
// netlink and checks the answer is the table's, over IPv4 and IPv6; and
// that a connection that does not exist gets no answer, although the
// kernel's lookup would otherwise name the listener on its port.
func TestDiagAgreesWithTheTable(t *testing.T) {
	if !dumpWorks(t) {
		t.Skip("this kernel answers no sock_diag dump (no inet_diag): Lookup reads the table")
	}
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		lis, err := net.Listen("tcp", addr)
		if err != nil {
			t.Logf("%s: no such listener here (%v)", addr, err)
			continue
		}
		defer lis.Close()
		c, err := net.Dial("tcp", lis.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := lis.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		client, server := s.RemoteAddr().(*net.TCPAddr), s.LocalAddr().(*net.TCPAddr)
		got, ok, err := diag(client, server)
		if !ok || err != nil {
			t.Fatalf("%s: sock_diag gave no answer for a live connection (ok %v, err %v)", addr, ok, err)
		}
		want, err := scan(client, server)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("%s: sock_diag says %+v, /proc/net/tcp %+v", addr, got, want)
		}
		// The server's end, from a port nobody connected from: the kernel
		// would name the listener; that is no answer.
		if sock, ok, err := diag(&net.TCPAddr{IP: server.IP, Port: 1}, server); ok {
			t.Fatalf("%s: a connection that does not exist was found: %+v, %v", addr, sock, err)
		}
		if sock, ok, err := diag(server, &net.TCPAddr{IP: server.IP, Port: 1}); ok {
			t.Fatalf("%s: a connection that does not exist was found: %+v, %v", addr, sock, err)
		}
	}
}

// dumpWorks reports whether the kernel answers a sock_diag dump of the
// IPv4 TCP listeners, i.e. has inet_diag: where it does, an exact lookup
// that gives no answer is a bug in the request.
func dumpWorks(t *testing.T) bool {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0") // at least this one to list
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		t.Logf("netlink: %v", err)
		return false
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 5}); err != nil {
		t.Fatal(err)
	}
	req := diagRequest(unix.AF_INET, 0, 0, [16]byte{}, [16]byte{})
	binary.NativeEndian.PutUint16(req[6:8], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(req[unix.NLMSG_HDRLEN+4:unix.NLMSG_HDRLEN+8], 1<<10) // listeners only: few, so one read holds ours
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		t.Logf("netlink send: %v", err)
		return false
	}
	buf := make([]byte, 1<<16)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		t.Logf("netlink receive: %v", err)
		return false
	}
	msgs, err := syscall.ParseNetlinkMessage(buf[:n])
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(lis.Addr().(*net.TCPAddr).Port)
	for _, m := range msgs {
		if m.Header.Type == unix.SOCK_DIAG_BY_FAMILY && len(m.Data) >= diagMsgLen &&
			strconv.Itoa(int(binary.BigEndian.Uint16(m.Data[4:6]))) == port {
			return true
		}
	}
	t.Logf("sock_diag dump: %d messages, none for our listener", len(msgs))
	return false
}

// BenchmarkLookup looks up one connection on a host with 2,000 other
// connections (4,000 sockets) of this process: by netlink and by reading
// the table.
//
//	go test -run '^$' -bench Lookup ./internal/localpeer/
func BenchmarkLookup(b *testing.B) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer lis.Close()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for range 2000 {
		c, err := net.Dial("tcp", lis.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		s, err := lis.Accept()
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c, s)
	}
	client, server := conns[len(conns)-1].RemoteAddr().(*net.TCPAddr), conns[len(conns)-1].LocalAddr().(*net.TCPAddr)
	b.Run("sock_diag", func(b *testing.B) {
		for b.Loop() {
			if _, ok, err := diag(client, server); !ok || err != nil {
				b.Fatal("no answer", err)
			}
		}
	})
	b.Run("proc_net_tcp", func(b *testing.B) {
		for b.Loop() {
			if _, err := scan(client, server); err != nil {
				b.Fatal(err)
			}
		}
	})
}
