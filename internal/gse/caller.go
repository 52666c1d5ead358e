package gse

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/stats"
)

// A GSE call names its process by the "pid" it carries, and the agent acts
// on that pid: it registers it, puts sessions on it, signals it. So the pid
// is checked against the connection the call came on: the process must
// hold that TCP connection (Linux: /proc/net/tcp{,6} gives the connection's
// socket inode, /proc/<pid>/fd the process's sockets). A local process can
// then act only as itself, never make the agent kill, read the logs of, or
// take the sessions of another process. The check runs once per connection
// and pid (connCaller); a game's calls share one connection.

// CheckSocketOwner is the default of Config.CallerCheck: it reports whether
// process pid holds the TCP connection from client to server (addresses as
// the server sees them). It needs Linux's /proc and permission to read
// /proc/<pid>/fd, so game processes run as the agent's user.
func CheckSocketOwner(client, server net.Addr, pid int) error {
	c, ok1 := client.(*net.TCPAddr)
	s, ok2 := server.(*net.TCPAddr)
	if !ok1 || !ok2 {
		return fmt.Errorf("the call did not come over TCP (%v)", client)
	}
	inode, err := socketInode(c, s)
	if err != nil {
		return err
	}
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	fds, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("cannot read the sockets of pid %d (run game processes as the agent's user)", pid)
		}
		return fmt.Errorf("pid %d is not a process on this host", pid)
	}
	want := "socket:[" + inode + "]"
	for _, fd := range fds {
		if l, err := os.Readlink(dir + "/" + fd.Name()); err == nil && l == want {
			return nil
		}
	}
	return fmt.Errorf("pid %d does not hold the connection the call came on (from %v); a process may only make GSE calls as itself", pid, client)
}

// socketInode finds the inode of the socket whose local end is client and
// remote end is server in /proc/net/tcp or tcp6.
func socketInode(client, server *net.TCPAddr) (string, error) {
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		local, remote := procAddr(client, table), procAddr(server, table)
		if local == "" || remote == "" {
			continue
		}
		inode, err := findInode(table, local, remote)
		if err != nil {
			return "", err
		}
		if inode != "" {
			return inode, nil
		}
	}
	return "", fmt.Errorf("the connection from %v is not in /proc/net/tcp (the caller must be on this host)", client)
}

func findInode(table, local, remote string) (string, error) {
	f, err := os.Open(table)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", nil
		}
		return "", fmt.Errorf("read %s: %w", table, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode …
		fs := strings.Fields(sc.Text())
		if len(fs) >= 10 && fs[1] == local && fs[2] == remote {
			return fs[9], nil
		}
	}
	return "", sc.Err()
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

// connCaller remembers the processes verified on one connection: pid and
// start time, so a pid reused by a later process (which might inherit or
// be handed the connection) is checked again.
type connCaller struct {
	mu    sync.Mutex
	procs []verifiedProc
}

type verifiedProc struct {
	pid   int
	start uint64
}

type connCallerKey struct{}

// callerTagger gives every connection of the GSE endpoint its connCaller.
type callerTagger struct{}

func (callerTagger) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return context.WithValue(ctx, connCallerKey{}, &connCaller{})
}
func (callerTagger) HandleConn(context.Context, stats.ConnStats)                     {}
func (callerTagger) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (callerTagger) HandleRPC(context.Context, stats.RPCStats)                       {}

// maxPIDsPerConn bounds what one connection remembers (a game and the
// wrapper that started it share its socket).
const maxPIDsPerConn = 8

// checkCaller checks that the call in ctx comes from process pid (see
// CheckSocketOwner), once per connection and process (pid and start time:
// every call reads the pid's start time, one small /proc read).
func (a *Agent) checkCaller(ctx context.Context, pid int) error {
	c, _ := ctx.Value(connCallerKey{}).(*connCaller)
	pr, ok := peer.FromContext(ctx)
	if c == nil || !ok {
		return errors.New("the call has no connection information")
	}
	start, alive := a.cfg.ProcessInfo(pid)
	if !alive {
		return fmt.Errorf("pid %d is not a running process on this host", pid)
	}
	me := verifiedProc{pid: pid, start: start}
	c.mu.Lock()
	defer c.mu.Unlock()
	if slices.Contains(c.procs, me) {
		return nil
	}
	if err := a.cfg.CallerCheck(pr.Addr, pr.LocalAddr, pid); err != nil {
		return err
	}
	c.procs = slices.DeleteFunc(c.procs, func(v verifiedProc) bool { return v.pid == pid }) // an earlier process of that pid
	if len(c.procs) < maxPIDsPerConn {
		c.procs = append(c.procs, me)
	}
	return nil
}
