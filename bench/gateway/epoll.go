//go:build linux

package main

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// epollReaders reads the WebSockets of the fan-out measurement the way a
// load generator should on a small machine: a few goroutines, each waiting
// on its own epoll set of non-blocking sockets, instead of one blocked
// goroutine per connection (10,000 goroutine wake-ups per fan-out on the
// same two cores as the gateway were a large part of the measured latency).
type epollReaders struct {
	readers []*epollReader
	wg      sync.WaitGroup
}

type epollReader struct {
	epfd      int
	conns     map[int32]*econn
	delivered *atomic.Int64
	stop      chan struct{}

	mu  sync.Mutex
	lat []time.Duration
}

type econn struct {
	f     *os.File // a dup of the socket; the net.Conn is closed
	carry []byte   // a frame split across reads
}

// newEpollReaders moves cs to n epoll readers (the net.Conns are closed;
// the readers own duplicates of their sockets) and starts them.
func newEpollReaders(cs []*wsConn, n int, delivered *atomic.Int64) (*epollReaders, error) {
	e := &epollReaders{}
	for i := 0; i < n; i++ {
		epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			return nil, err
		}
		e.readers = append(e.readers, &epollReader{epfd: epfd, conns: map[int32]*econn{}, delivered: delivered, stop: make(chan struct{})})
	}
	for i, c := range cs {
		if c.r.Buffered() > 0 {
			return nil, fmt.Errorf("connection %d: %d bytes already buffered", i, c.r.Buffered())
		}
		f, err := c.conn.(*net.TCPConn).File()
		if err != nil {
			return nil, err
		}
		fd := int(f.Fd())
		if err := syscall.SetNonblock(fd, true); err != nil {
			return nil, err
		}
		_ = c.conn.Close() // the dup keeps the socket open
		r := e.readers[i%n]
		r.conns[int32(fd)] = &econn{f: f}
		if err := syscall.EpollCtl(r.epfd, syscall.EPOLL_CTL_ADD, fd, &syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(fd)}); err != nil {
			return nil, err
		}
	}
	for _, r := range e.readers {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			r.run()
		}()
	}
	return e, nil
}

// run reads until every connection closed or stop is closed.
func (r *epollReader) run() {
	defer syscall.Close(r.epfd)
	events := make([]syscall.EpollEvent, 256)
	buf := make([]byte, 64<<10)
	for len(r.conns) > 0 {
		select {
		case <-r.stop:
			for _, c := range r.conns {
				_ = c.f.Close()
			}
			return
		default:
		}
		n, err := syscall.EpollWait(r.epfd, events, 100)
		if err != nil && err != syscall.EINTR {
			return
		}
		var lat []time.Duration
		for _, ev := range events[:max(n, 0)] {
			c := r.conns[ev.Fd]
			if c == nil {
				continue
			}
			m, err := syscall.Read(int(ev.Fd), buf)
			if m <= 0 {
				if err == syscall.EAGAIN {
					continue
				}
				_ = syscall.EpollCtl(r.epfd, syscall.EPOLL_CTL_DEL, int(ev.Fd), nil)
				_ = c.f.Close()
				delete(r.conns, ev.Fd)
				continue
			}
			now := time.Now().UnixNano()
			data := buf[:m]
			if len(c.carry) > 0 {
				data = append(c.carry, data...)
				c.carry = nil
			}
			for len(data) >= 2 {
				size := int(data[1] & 0x7F) // the benchmark sends 64-byte messages only
				if len(data) < 2+size {
					break
				}
				if size >= 8 {
					lat = append(lat, time.Duration(now-int64(binary.BigEndian.Uint64(data[2:10]))))
				}
				r.delivered.Add(1)
				data = data[2+size:]
			}
			if len(data) > 0 {
				c.carry = append([]byte(nil), data...)
			}
		}
		if len(lat) > 0 {
			r.mu.Lock()
			r.lat = append(r.lat, lat...)
			r.mu.Unlock()
		}
	}
}

// latencies returns and clears the latencies recorded so far.
func (e *epollReaders) latencies() []time.Duration {
	var out []time.Duration
	for _, r := range e.readers {
		r.mu.Lock()
		out = append(out, r.lat...)
		r.lat = r.lat[:0]
		r.mu.Unlock()
	}
	return out
}

// close stops the readers and waits for them.
func (e *epollReaders) close() {
	for _, r := range e.readers {
		close(r.stop)
	}
	e.wg.Wait()
}
