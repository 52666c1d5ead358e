package gse

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"

	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/stats"

	"github.com/croupier/croupier/internal/localpeer"
)

// A GSE call names its process by the "pid" it carries, and the agent acts
// on that pid: it registers it, puts sessions on it, signals it. So the pid
// is checked against the connection the call came on: the process must
// hold that TCP connection (Linux: the kernel gives the connection's socket
// inode — localpeer — and /proc/<pid>/fd the process's sockets). A local process can
// then act only as itself, never make the agent kill, read the logs of, or
// take the sessions of another process. The check runs once per connection
// and pid (connCaller); a game's calls share one connection.

// CheckSocketOwner is the default of Config.CallerCheck: it reports whether
// process pid holds the TCP connection from client to server (addresses as
// the server sees them). It needs Linux's /proc and permission to read
// /proc/<pid>/fd, so game processes run as the agent's user.
func CheckSocketOwner(client, server net.Addr, pid int) error {
	sock, err := localpeer.Lookup(client, server)
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
	want := "socket:[" + sock.Inode + "]"
	for _, fd := range fds {
		if l, err := os.Readlink(dir + "/" + fd.Name()); err == nil && l == want {
			return nil
		}
	}
	return fmt.Errorf("pid %d does not hold the connection the call came on (from %v); a process may only make GSE calls as itself", pid, client)
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
