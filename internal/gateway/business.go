package gateway

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/croupier/croupier/api/netsvr"
)

// maxWorkerID is the largest workerId: clients address it with 3 digits.
const maxWorkerID = 999

// business is one connected business process. Its reader goroutine (serve)
// processes the frames it sends one at a time, in order; its writer
// goroutine (writeLoop) owns the socket's write side and drains out. Both
// exit when the connection closes; the gateway's WaitGroup tracks them.
type business struct {
	g    *Gateway
	conn net.Conn
	out  chan []byte
	done chan struct{}
	once sync.Once

	// workerID and registerID are set by Register and read by the manager.
	mu         sync.Mutex
	workerID   int32
	registerID string

	// pool runs one-way commands when the business registered with
	// processCmdGoroutineNum > 1 (nil: one at a time on the reader). The
	// reader goroutine owns it.
	pool *cmdPool

	// flushing is held by the writer while it writes; Register holds it
	// while it queues RegisterResp and joins the manager, so the business
	// cannot see its RegisterResp before it is reachable (a client that
	// connects right after must get its ConnOpen), and nothing routed to it
	// is queued before the RegisterResp.
	flushing sync.Mutex
}

func newBusiness(g *Gateway, conn net.Conn) *business {
	return &business{g: g, conn: conn, out: make(chan []byte, g.cfg.BusinessQueue), done: make(chan struct{})}
}

func (b *business) close() {
	b.once.Do(func() {
		close(b.done)
		_ = b.conn.Close()
		b.g.businesses.remove(b)
	})
}

// trySend queues a frame without waiting; a full queue drops it (the
// business is not keeping up) and reports false.
func (b *business) trySend(frame []byte) bool {
	select {
	case b.out <- frame:
		return true
	case <-b.done:
		return false
	default:
		b.g.log.Warn("gateway: business queue full, frame dropped", "remote", b.conn.RemoteAddr().String(), "queue", cap(b.out))
		return false
	}
}

// send queues a frame, waiting while the queue is full (used for answers
// to the business's own requests, so it back-pressures only itself).
func (b *business) send(frame []byte) {
	select {
	case b.out <- frame:
	case <-b.done:
	}
}

func (b *business) writeLoop() {
	defer b.close()
	w := bufio.NewWriterSize(b.conn, 32<<10)
	for {
		var f []byte
		select {
		case f = <-b.out:
		case <-b.done:
			return
		}
		if !b.flush(w, f) {
			return
		}
	}
}

// flush writes f and whatever else is queued, then flushes the buffer.
func (b *business) flush(w *bufio.Writer, f []byte) bool {
	b.flushing.Lock()
	defer b.flushing.Unlock()
	for {
		if _, err := w.Write(f); err != nil {
			return false
		}
		select {
		case f = <-b.out:
			continue
		default:
		}
		break
	}
	return w.Flush() == nil
}

// serve reads and processes frames until the connection fails, idles past
// the read deadline, or sends something the gateway cannot process.
func (b *business) serve() {
	defer b.close()
	defer b.setPool(0)
	r := bufio.NewReaderSize(b.conn, 32<<10)
	for {
		_ = b.conn.SetReadDeadline(time.Now().Add(b.g.cfg.ReadDeadline))
		f, err := readFrame(r, b.g.cfg.ReceivePackLimit)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				b.g.log.Info("gateway: business disconnected", "remote", b.conn.RemoteAddr().String(), "err", err)
			}
			return
		}
		if f.heartbeat {
			b.send(appendHeartbeat(nil, PongMessage))
			continue
		}
		c := netsvr.Cmd(f.cmd)
		if b.pool != nil {
			if oneWay[c] {
				b.pool.run(func() { _ = b.g.dispatch(b, f.cmd, f.body) }) // one-way commands return no error
				continue
			}
			b.pool.wait()
		}
		if c == netsvr.Cmd_Broadcast || c == netsvr.Cmd_TopicPublish {
			b.g.fanOutBatch(r, c, f.body)
			continue
		}
		if err := b.g.dispatch(b, f.cmd, f.body); err != nil {
			b.g.log.Warn("gateway: closing business", "remote", b.conn.RemoteAddr().String(), "err", err)
			return
		}
	}
}

// setPool replaces the business's command pool with one of n workers
// (none for n <= 1), after the old one has finished its commands. Only
// the reader goroutine calls it.
func (b *business) setPool(n int) {
	if b.pool != nil {
		b.pool.close()
		b.pool = nil
	}
	if n > 1 {
		b.pool = newCmdPool(n)
	}
}

// businesses is the manager of registered businesses: workerId → the
// businesses that registered it, picked round-robin.
type businesses struct {
	mu     sync.RWMutex
	groups map[int32]*workerGroup
}

type workerGroup struct {
	members []*business
	next    atomic.Uint32
}

func newBusinesses() *businesses { return &businesses{groups: map[int32]*workerGroup{}} }

func (m *businesses) add(b *business, workerID int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	g := m.groups[workerID]
	if g == nil {
		g = &workerGroup{}
		m.groups[workerID] = g
	}
	// Copy on write: pick reads members without the lock held long.
	g.members = append(append([]*business(nil), g.members...), b)
}

// remove drops b from its worker group, if registered.
func (m *businesses) remove(b *business) {
	b.mu.Lock()
	id := b.workerID
	b.workerID, b.registerID = 0, ""
	b.mu.Unlock()
	if id == 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	g := m.groups[id]
	if g == nil {
		return
	}
	kept := make([]*business, 0, len(g.members))
	for _, x := range g.members {
		if x != b {
			kept = append(kept, x)
		}
	}
	if len(kept) == 0 {
		delete(m.groups, id)
		return
	}
	g.members = kept
}

// byRegisterID finds the business registered under id.
func (m *businesses) byRegisterID(id string) *business {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, g := range m.groups {
		for _, b := range g.members {
			b.mu.Lock()
			match := b.registerID == id
			b.mu.Unlock()
			if match {
				return b
			}
		}
	}
	return nil
}

// pick returns the next business of workerID, round-robin, or nil.
func (m *businesses) pick(workerID int32) *business {
	m.mu.RLock()
	defer m.mu.RUnlock()
	g := m.groups[workerID]
	if g == nil || len(g.members) == 0 {
		return nil
	}
	return g.members[int(g.next.Add(1)-1)%len(g.members)]
}

// count is the number of registrations.
func (m *businesses) count() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	n := 0
	for _, g := range m.groups {
		n += len(g.members)
	}
	return n
}
