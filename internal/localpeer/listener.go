package localpeer

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Listener admits connections whose client socket belongs to an allowed
// user: loopback keeps other hosts out, not other users of this host. The check runs on a connection's first read or write, in
// the goroutine that serves it, so a slow lookup does not hold up Accept
// for the others.
type Listener struct {
	net.Listener
	name    string
	allowed []int
	lookup  func(client, server net.Addr) (Socket, error)
	log     *slog.Logger
	// lookups lets one lookup run at a time: one that sock_diag does not
	// answer (a client that closed at once) reads the whole socket table,
	// and another local user must not be able to spend more than one core
	// of this process's by opening connections.
	lookups chan struct{}
	// lastLog and quiet rate-limit the refusal log (a local user can open
	// connections as fast as it likes): one line per second, with the
	// number of refusals not logged since the last line.
	lastLog atomic.Int64
	quiet   atomic.Int64
}

// NewListener admits, on lis, connections from processes of this process's
// effective user, of root and of the users extra lists (a socket records
// its creator's effective uid); name names the port in refusals and in
// the log line "<name> connection refused" ("SDK").
func NewListener(lis net.Listener, name string, extra []int, log *slog.Logger) *Listener {
	allowed := append([]int{os.Geteuid(), 0}, extra...)
	slices.Sort(allowed)
	return &Listener{Listener: lis, name: name, allowed: slices.Compact(allowed), lookup: Lookup, log: log,
		lookups: make(chan struct{}, 1)}
}

// Accept returns the next connection; it is checked on its first read or
// write.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &conn{Conn: c, l: l}, nil
}

// admit checks nc's client and closes nc if it is not admitted.
func (l *Listener) admit(nc net.Conn) error {
	l.lookups <- struct{}{}
	sock, err := l.lookup(nc.RemoteAddr(), nc.LocalAddr())
	<-l.lookups
	if err == nil {
		if _, ok := slices.BinarySearch(l.allowed, sock.UID); ok {
			return nil
		}
		err = fmt.Errorf("the connecting process runs as uid %d; the %s port admits uids %v", sock.UID, l.name, l.allowed)
	} else {
		err = fmt.Errorf("the connecting process's user is unknown: %w", err)
	}
	_ = nc.Close()
	now := time.Now().UnixNano()
	if last := l.lastLog.Load(); now-last >= int64(time.Second) && l.lastLog.CompareAndSwap(last, now) {
		l.log.Warn(l.name+" connection refused", "from", nc.RemoteAddr(), "err", err, "refused_unlogged", l.quiet.Swap(0))
	} else {
		l.quiet.Add(1)
	}
	return err
}

// conn is a connection of a Listener, admitted on first use.
type conn struct {
	net.Conn
	l    *Listener
	once sync.Once
	err  error
}

func (c *conn) check() error {
	c.once.Do(func() { c.err = c.l.admit(c.Conn) })
	return c.err
}

func (c *conn) Read(b []byte) (int, error) {
	if err := c.check(); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c *conn) Write(b []byte) (int, error) {
	if err := c.check(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}
