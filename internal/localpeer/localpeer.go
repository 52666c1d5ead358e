// Package localpeer tells which local user holds the other end of a TCP
// connection that came from this host: Linux knows every TCP socket of the
// network namespace, with its owner's uid and its inode. Lookup asks the
// kernel for the one socket by netlink (sock_diag, as `ss` does) and, where
// that gives no answer, reads the tables /proc/net/tcp and /proc/net/tcp6.
// The agent uses it to admit only its own user's game servers on its
// loopback ports (the SDK port by uid, the GSE endpoint by the process that
// holds the socket).
package localpeer

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// Socket is the client's end of a connection, as /proc lists it.
type Socket struct {
	UID   int    // the user that created the socket
	Inode string // its inode: "socket:[Inode]" in the holder's /proc/<pid>/fd
}

// Lookup finds the client's socket of the connection from client to server
// (the addresses as the server sees them: its RemoteAddr and LocalAddr).
// It fails for a connection that is not TCP or not from this host (or this
// network namespace), whose client socket no process holds any more, and
// where neither netlink nor /proc/net/tcp answers (not Linux). The netlink
// lookup costs the same whatever the number of sockets; only when it finds
// nothing (a socket gone, a kernel without inet_diag) is the whole table
// read: a few milliseconds on a host with tens of thousands of sockets.
func Lookup(client, server net.Addr) (Socket, error) {
	c, ok1 := client.(*net.TCPAddr)
	s, ok2 := server.(*net.TCPAddr)
	if !ok1 || !ok2 {
		return Socket{}, fmt.Errorf("the connection is not TCP (%v)", client)
	}
	if sock, ok, err := diag(c, s); ok {
		return sock, err
	}
	return scan(c, s)
}

// scan finds the socket c → s in /proc/net/tcp{,6}.
func scan(c, s *net.TCPAddr) (Socket, error) {
	read := false
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		local, remote := procAddr(c, table), procAddr(s, table)
		if local == "" || remote == "" {
			continue
		}
		sock, found, err := find(table, local, remote)
		switch {
		case errors.Is(err, os.ErrNotExist):
			continue // no IPv6 here, or no /proc
		case err != nil:
			return Socket{}, err
		case found:
			return sock, nil
		}
		read = true
	}
	if !read {
		return Socket{}, errors.New("/proc/net/tcp cannot be read here (Linux only)")
	}
	return Socket{}, fmt.Errorf("the connection from %v is not in /proc/net/tcp (the caller must be on this host)", c)
}

// Available reports why Lookup cannot work here, nil if it can.
func Available() error {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return fmt.Errorf("%w (Linux only)", err)
	}
	return f.Close()
}

// errClosed is the error for a socket no process holds any more (closed, or
// TIME_WAIT): the kernel gives it as root's, which says nothing about who
// opened it.
func errClosed(client any) error {
	return fmt.Errorf("the connection from %v was closed by its client before it could be checked: its owner is unknown", client)
}

// find scans one table for the row of local → remote.
func find(table, local, remote string) (Socket, bool, error) {
	f, err := os.Open(table)
	if err != nil {
		return Socket{}, false, fmt.Errorf("read %s: %w", table, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode …
		fs := strings.Fields(sc.Text())
		if len(fs) >= 10 && fs[1] == local && fs[2] == remote {
			if fs[9] == "0" {
				return Socket{}, false, errClosed(local)
			}
			uid, err := strconv.Atoi(fs[7])
			if err != nil {
				return Socket{}, false, fmt.Errorf("%s: uid %q: %w", table, fs[7], err)
			}
			return Socket{UID: uid, Inode: fs[9]}, true, nil
		}
	}
	if err := sc.Err(); err != nil {
		return Socket{}, false, fmt.Errorf("read %s: %w", table, err)
	}
	return Socket{}, false, nil
}

// procAddr writes a as /proc/net/<table> does: the address's 32-bit words
// in host byte order as hex, a colon, the port as hex. IPv4 addresses
// appear in tcp6 mapped (::ffff:a.b.c.d) when the listener is IPv6.
func procAddr(a *net.TCPAddr, table string) string {
	ip := a.IP.To16()
	if ip == nil {
		return ""
	}
	words := ip
	if strings.HasSuffix(table, "tcp") {
		if words = a.IP.To4(); words == nil {
			return ""
		}
	}
	var b strings.Builder
	for i := 0; i+4 <= len(words); i += 4 {
		fmt.Fprintf(&b, "%08X", binary.NativeEndian.Uint32(words[i:i+4]))
	}
	fmt.Fprintf(&b, ":%04X", a.Port)
	return b.String()
}
