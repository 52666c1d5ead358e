package live

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// stream is one live stream on this node: published here (by an RTMP
// session) or relayed from the publisher's node (by a pull). Its writer
// (the session or the pull goroutine) calls write; viewers get their own
// bounded queue, filled under mu with non-blocking sends.
type stream struct {
	path         string // "<room>/<name>"
	roomID, name string
	nodeID       string // the publisher's node
	epoch        int64
	relayed      bool
	// publisher is the user publishing a stream published here (the
	// stream key's holder); "" for a relay. remote is the publisher's
	// address.
	publisher, remote string
	// cutOff ends the publish once, audited (Node.cutOff).
	cutOff  sync.Once
	started time.Time
	// stop ends the stream's writer (the publisher's connection or the
	// pull); safe to call more than once.
	stop func()
	done chan struct{} // closed by end

	mu       sync.Mutex
	ended    bool
	meta     Tag
	vhdr     Tag
	ahdr     Tag
	gop      []Tag // from the latest keyframe; nil while too big
	gopBytes int
	viewers  map[*viewer]struct{}
	total    int64
	rate     rateMeter
	maxGOP   int
	queue    int
	m        *metrics
}

func newStream(path, roomID, name, nodeID string, epoch int64, relayed bool, queue, maxGOP int, m *metrics) *stream {
	return &stream{path: path, roomID: roomID, name: name, nodeID: nodeID, epoch: epoch, relayed: relayed,
		started: time.Now(), done: make(chan struct{}), viewers: map[*viewer]struct{}{},
		queue: queue, maxGOP: maxGOP, m: m, stop: func() {}}
}

// viewer is one HTTP-FLV viewer or one relay pull of a stream.
type viewer struct {
	ch chan Tag
	// userID is the member watching ("" for a relay pull); revoked
	// closes when their access ends (dropViewer), and their reader then
	// leaves.
	userID  string
	revoked chan struct{}
	// waitKey: the queue overflowed; tags are dropped until the next
	// keyframe, which is sent after the codec headers again. Guarded by
	// the stream's mu.
	waitKey bool
	dropped int64
	// lagging is set by the viewer's reader when the tag it took was
	// queued more than maxLag ago; the writer then empties its queue and
	// skips it to the next keyframe.
	lagging atomic.Bool
}

// took is called by the viewer's reader with each tag it takes.
func (v *viewer) took(t Tag, maxLag time.Duration) {
	if !t.queued.IsZero() && time.Since(t.queued) > maxLag {
		v.lagging.Store(true)
	}
}

// write adds a tag from the stream's writer: codec headers are kept for
// new viewers, the GOP cache restarts at each keyframe, and every viewer
// gets the tag or, if its queue is full, starts waiting for a keyframe.
func (s *stream) write(t Tag) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return
	}
	s.total += int64(len(t.Data))
	s.rate.add(now, len(t.Data))
	s.m.ingestBytes.Add(float64(len(t.Data)))
	switch {
	case t.header():
		switch t.Type {
		case TagScript:
			s.meta = t
		case TagVideo:
			s.vhdr = t
		case TagAudio:
			s.ahdr = t
		}
	case t.keyframe():
		s.gop, s.gopBytes = append(s.gop[:0], t), len(t.Data)
	case s.gop != nil:
		if s.gopBytes+len(t.Data) > s.maxGOP || len(s.gop) >= s.queue/2 {
			// Too long to replay to a new viewer: new viewers wait for
			// the next keyframe instead.
			s.gop, s.gopBytes = nil, 0
		} else {
			s.gop, s.gopBytes = append(s.gop, t), s.gopBytes+len(t.Data)
		}
	}
	for v := range s.viewers {
		s.offer(v, t)
	}
}

// offer queues t for v without blocking. s.mu held.
func (s *stream) offer(v *viewer, t Tag) {
	if v.lagging.Load() {
		v.lagging.Store(false)
		for len(v.ch) > 0 {
			select {
			case <-v.ch:
			default:
			}
		}
		v.waitKey = true
		v.dropped++
		s.m.viewerDrops.Inc()
	}
	t.queued = time.Now()
	if v.waitKey {
		// Codec headers are not passed on while waiting: write keeps the
		// latest, and sendHeaders queues them with the keyframe. (A video
		// header carries frame type 1 too, but does not start a GOP.)
		if !t.keyframe() || t.header() || cap(v.ch)-len(v.ch) < 4 {
			return
		}
		v.waitKey = false
		s.sendHeaders(v)
	}
	select {
	case v.ch <- t:
	default:
		v.waitKey = true
		v.dropped++
		s.m.viewerDrops.Inc()
	}
}

// sendHeaders queues the codec headers; the caller checked there is room.
func (s *stream) sendHeaders(v *viewer) {
	for _, h := range []Tag{s.meta, s.vhdr, s.ahdr} {
		if h.Data != nil {
			h.queued = time.Now()
			v.ch <- h
		}
	}
}

// subscribe adds a viewer (the member userID; "" for a relay pull) with
// the headers and the GOP cache queued. It fails with errNotLive if the
// stream has ended, and with errTooManyViewers if the member already
// watches it on maxPerUser connections.
func (s *stream) subscribe(queue int, userID string, maxPerUser int) (*viewer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return nil, fmt.Errorf("stream %s has ended: %w", s.path, errNotLive)
	}
	if userID != "" {
		n := 0
		for v := range s.viewers {
			if v.userID == userID {
				n++
			}
		}
		if n >= maxPerUser {
			return nil, fmt.Errorf("%w: user %s watches stream %s on %d connections already", errTooManyViewers, userID, s.path, n)
		}
	}
	v := &viewer{ch: make(chan Tag, queue), userID: userID, revoked: make(chan struct{})}
	if s.gop != nil && len(s.gop)+3 <= queue {
		s.sendHeaders(v)
		now := time.Now()
		for _, t := range s.gop {
			t.queued = now
			v.ch <- t
		}
	} else {
		v.waitKey = true
	}
	s.viewers[v] = struct{}{}
	s.m.viewers.Inc()
	return v, nil
}

// errTooManyViewers: the member's connections to the stream are at
// Config.MaxViewersPerUser (each holds a goroutine and a queue of tags).
var errTooManyViewers = errors.New("too many connections to this stream")

// unsubscribe removes v; it returns the viewers left.
func (s *stream) unsubscribe(v *viewer) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.viewers[v]; ok {
		delete(s.viewers, v)
		s.m.viewers.Dec()
	}
	return len(s.viewers)
}

// watchedBy reports whether userID has a viewer of s.
func (s *stream) watchedBy(userID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for v := range s.viewers {
		if v.userID == userID {
			return true
		}
	}
	return false
}

// dropViewer ends the viewers of the member userID: each is removed and
// its revoked channel closed, on which its reader leaves.
func (s *stream) dropViewer(userID string) {
	if userID == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for v := range s.viewers {
		if v.userID == userID {
			delete(s.viewers, v)
			s.m.viewers.Dec()
			close(v.revoked)
		}
	}
}

// end marks the stream ended and wakes its viewers; it reports whether
// this call ended it.
func (s *stream) end() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return false
	}
	s.ended = true
	close(s.done)
	return true
}

// stats is the stream's StreamStats numbers.
func (s *stream) stats() (bitrate int64, viewers int, total int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rate.bps(time.Now()), len(s.viewers), s.total
}

// rateMeter measures bits per second over windows of two seconds.
type rateMeter struct {
	start time.Time
	bytes int64
	last  int64 // bps of the last full window
}

const rateWindow = 2 * time.Second

func (r *rateMeter) add(now time.Time, n int) {
	if r.start.IsZero() {
		r.start = now
	}
	if el := now.Sub(r.start); el >= rateWindow {
		r.last = r.bytes * 8 * int64(time.Second) / int64(el)
		r.start, r.bytes = now, 0
	}
	r.bytes += int64(n)
}

func (r *rateMeter) bps(now time.Time) int64 {
	if now.Sub(r.start) > 2*rateWindow {
		return 0 // nothing arrived lately
	}
	return r.last
}
