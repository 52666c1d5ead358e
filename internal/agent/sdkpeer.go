package agent

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/croupier/croupier/internal/localpeer"
)

// The SDK port trusts whoever connects: a game server registers instances,
// receives the invocations of its functions (their payloads) and answers
// them. Loopback keeps other hosts out, not other users of this host, so
// the port admits only processes of the agent's own user, of root, and of
// the users sdk_allow_uids names (game servers in another container of the
// same network namespace, under another uid). The uid comes from the
// kernel (localpeer: sock_diag, else /proc/net/tcp); where /proc/net/tcp
// cannot be read the agent does not start (Start).

// peerListener admits connections whose client socket belongs to an
// allowed user. The check runs on a connection's first read or write, in
// the goroutine that serves it, so a slow lookup does not hold up Accept
// for the others.
type peerListener struct {
	net.Listener
	allowed []int
	lookup  func(client, server net.Addr) (localpeer.Socket, error)
	log     *slog.Logger
	// lookups lets one lookup run at a time: one that sock_diag does not
	// answer (a client that closed at once) reads the whole socket table,
	// and another local user must not be able to spend more than one core
	// of the agent's by opening connections.
	lookups chan struct{}
	// lastLog and quiet rate-limit the refusal log (a local user can open
	// connections as fast as it likes): one line per second, with the
	// number of refusals not logged since the last line.
	lastLog atomic.Int64
	quiet   atomic.Int64
}

// newPeerListener admits the agent's user, root and extra.
func newPeerListener(lis net.Listener, extra []int, log *slog.Logger) *peerListener {
	allowed := append([]int{os.Geteuid(), 0}, extra...) // a socket records its creator's effective uid
	slices.Sort(allowed)
	return &peerListener{Listener: lis, allowed: slices.Compact(allowed), lookup: localpeer.Lookup, log: log,
		lookups: make(chan struct{}, 1)}
}

func (l *peerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &peerConn{Conn: c, l: l}, nil
}

// admit checks nc's client and closes nc if it is not admitted.
func (l *peerListener) admit(nc net.Conn) error {
	l.lookups <- struct{}{}
	sock, err := l.lookup(nc.RemoteAddr(), nc.LocalAddr())
	<-l.lookups
	if err == nil {
		if _, ok := slices.BinarySearch(l.allowed, sock.UID); ok {
			return nil
		}
		err = fmt.Errorf("the connecting process runs as uid %d; the SDK port admits uids %v (the agent's user, root and sdk_allow_uids)", sock.UID, l.allowed)
	} else {
		err = fmt.Errorf("the connecting process's user is unknown: %w", err)
	}
	_ = nc.Close()
	now := time.Now().UnixNano()
	if last := l.lastLog.Load(); now-last >= int64(time.Second) && l.lastLog.CompareAndSwap(last, now) {
		l.log.Warn("SDK connection refused", "from", nc.RemoteAddr(), "err", err, "refused_unlogged", l.quiet.Swap(0))
	} else {
		l.quiet.Add(1)
	}
	return err
}

// peerConn is a connection of the SDK port, admitted on first use.
type peerConn struct {
	net.Conn
	l    *peerListener
	once sync.Once
	err  error
}

func (c *peerConn) check() error {
	c.once.Do(func() { c.err = c.l.admit(c.Conn) })
	return c.err
}

func (c *peerConn) Read(b []byte) (int, error) {
	if err := c.check(); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c *peerConn) Write(b []byte) (int, error) {
	if err := c.check(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}
