package localpeer

import (
	"encoding/binary"
	"net"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// diag asks the kernel for the TCP socket local → remote by netlink
// (NETLINK_SOCK_DIAG, an exact lookup by address as `ss` makes): one
// request and one answer, however many sockets the host has. ok is false
// when it gives no answer — no such socket, or sock_diag unavailable (a
// kernel without inet_diag, a sandbox refusing netlink) — and the caller
// reads the table instead.
func diag(local, remote *net.TCPAddr) (sock Socket, ok bool, err error) {
	family, src, dst := diagAddrs(local, remote)
	if family == 0 {
		return Socket{}, false, nil
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return Socket{}, false, nil
	}
	defer unix.Close(fd)
	// The kernel answers at once; the timeout only keeps a broken netlink
	// from hanging the caller.
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 1}); err != nil {
		return Socket{}, false, nil
	}
	req := diagRequest(family, local.Port, remote.Port, src, dst)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return Socket{}, false, nil
	}
	buf := make([]byte, 4096)
	n, from, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return Socket{}, false, nil
	}
	// Only the kernel's answer to this request counts (port 0; a process
	// allowed to send to this socket could otherwise answer first).
	if nl, ok := from.(*unix.SockaddrNetlink); !ok || nl.Pid != 0 {
		return Socket{}, false, nil
	}
	msgs, err := syscall.ParseNetlinkMessage(buf[:n])
	if err != nil || len(msgs) == 0 {
		return Socket{}, false, nil
	}
	m := msgs[0]
	if m.Header.Seq != diagSeq || m.Header.Type != unix.SOCK_DIAG_BY_FAMILY || len(m.Data) < diagMsgLen {
		return Socket{}, false, nil // NLMSG_ERROR: ENOENT (no such socket, or no inet_diag) and the like
	}
	// The kernel looks the socket up as it would for a packet from remote
	// to local, so where there is no such connection it can answer with a
	// socket listening on local's port (its id has no remote address and
	// port): only the socket asked for counts.
	if m.Data[0] != family || string(m.Data[4:40]) != string(req[unix.NLMSG_HDRLEN+8:unix.NLMSG_HDRLEN+44]) {
		return Socket{}, false, nil
	}
	uid := binary.NativeEndian.Uint32(m.Data[64:68])
	inode := binary.NativeEndian.Uint32(m.Data[68:72])
	if inode == 0 {
		return Socket{}, true, errClosed(local)
	}
	return Socket{UID: int(uid), Inode: strconv.FormatUint(uint64(inode), 10)}, true, nil
}

// diagSeq is the sequence number of the one request a socket sends; the
// answer carries it back.
const diagSeq = 1

// diagMsgLen is the size of struct inet_diag_msg: family, state, timer and
// retrans (a byte each), the socket id (48), expires, rqueue, wqueue, uid
// and inode (4 each).
const diagMsgLen = 72

// diagAddrs returns the family of the socket local → remote and the two
// addresses as that family's 16-byte id fields; 0 if they differ in family.
func diagAddrs(local, remote *net.TCPAddr) (family uint8, src, dst [16]byte) {
	l4, r4 := local.IP.To4(), remote.IP.To4()
	switch {
	case l4 != nil && r4 != nil:
		copy(src[:], l4)
		copy(dst[:], r4)
		return unix.AF_INET, src, dst
	case l4 == nil && r4 == nil && local.IP.To16() != nil && remote.IP.To16() != nil:
		copy(src[:], local.IP.To16())
		copy(dst[:], remote.IP.To16())
		return unix.AF_INET6, src, dst
	}
	return 0, src, dst
}

// diagRequest builds a netlink message holding struct inet_diag_req_v2 for
// the TCP socket sport/src → dport/dst, any state, no extensions.
func diagRequest(family uint8, sport, dport int, src, dst [16]byte) []byte {
	const reqLen = 56 // family, protocol, ext, pad, states (4), socket id (48)
	b := make([]byte, unix.NLMSG_HDRLEN+reqLen)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:4], uint32(len(b)))
	ne.PutUint16(b[4:6], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(b[6:8], unix.NLM_F_REQUEST)
	ne.PutUint32(b[8:12], diagSeq)
	r := b[unix.NLMSG_HDRLEN:]
	r[0], r[1] = family, unix.IPPROTO_TCP
	ne.PutUint32(r[4:8], 0xFFFFFFFF) // every state
	id := r[8:]
	binary.BigEndian.PutUint16(id[0:2], uint16(sport))
	binary.BigEndian.PutUint16(id[2:4], uint16(dport))
	copy(id[4:20], src[:])
	copy(id[20:36], dst[:])
	// id[36:40]: interface 0 (any); the cookie: none.
	ne.PutUint32(id[40:44], 0xFFFFFFFF)
	ne.PutUint32(id[44:48], 0xFFFFFFFF)
	return b
}
