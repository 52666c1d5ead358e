package roomcluster

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Room presence: how many streams each node has open in each room, for
// Room.online_count across the cluster. Each node writes its own counts to
// PresenceBucket under presenceKey(room, node) (deleted at 0) and watches
// every node's; a count reads as this node's own (exact, from the rooms
// system) plus those of the other nodes as last seen.
//
// Stale entries: the bucket keeps an entry DeadAfter (its TTL), and a node
// writes its non-zero counts again at every heartbeat, so a live node's
// entries never expire and a crashed node's count for at most DeadAfter
// (they are ignored, and dropped from the watched counts, once older than
// that; the bucket removes them). A node deletes its own entries when it
// stops, and at start those a previous run under the same node id left.
//
// The writer coalesces: Online (called with a room's lock held) only
// records the room's latest count and wakes the writer, so a burst of
// opens and closes costs one write per room, and the pending set is
// bounded by the number of rooms. A write that fails is queued again
// (unless a newer count is) and retried after a backoff.
type presence struct {
	mu      sync.Mutex
	pending map[string]int             // room -> this node's count, not yet written
	counts  map[string]map[string]seen // room -> node -> count, from the watch
	wake    chan struct{}

	// The writer goroutine's own:
	mine    map[string]int  // room -> this node's non-zero count, rewritten at each heartbeat
	touched map[string]bool // rooms whose entry of this node may exist (a put that failed may have been stored): deleted at stop
}

// presenceKey is the presence entry of a node in a room. Room and node ids
// have no '.'.
func presenceKey(room, node string) string { return "r." + room + "." + node }

// seen is a node's count in a room and when it was written.
type seen struct {
	count int
	at    time.Time
}

func newPresence() *presence {
	return &presence{pending: map[string]int{}, counts: map[string]map[string]seen{}, wake: make(chan struct{}, 1),
		mine: map[string]int{}, touched: map[string]bool{}}
}

// Online implements rooms.Bus: this node now has count streams open in
// the room. It does not block.
func (n *Node) Online(roomID string, count int) {
	p := n.presence
	p.mu.Lock()
	p.pending[roomID] = count
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// OnlineElsewhere implements rooms.Bus: the streams open in the room on
// the other nodes, as last seen within DeadAfter.
func (n *Node) OnlineElsewhere(roomID string) int {
	p := n.presence
	cutoff := n.cfg.Now().Add(-n.cfg.DeadAfter)
	p.mu.Lock()
	defer p.mu.Unlock()
	total := 0
	for node, c := range p.counts[roomID] {
		if node != n.cfg.NodeID && c.at.After(cutoff) {
			total += c.count
		}
	}
	return total
}

// writePresence deletes the entries a previous run of this node left,
// then writes the pending counts (and, at each heartbeat, every non-zero
// one again) until ctx ends, then deletes this node's entries. The caller
// owns the goroutine.
func (n *Node) writePresence(ctx context.Context) {
	p := n.presence
	n.clearStalePresence(ctx)
	beat := time.NewTicker(n.cfg.Heartbeat)
	defer beat.Stop()
	again := time.NewTimer(time.Hour)
	again.Stop()
	defer again.Stop()
	wait := minBackoff
	for {
		select {
		case <-ctx.Done():
			n.clearPresence()
			return
		case <-p.wake:
		case <-again.C:
		case <-beat.C:
			n.sweepPresence()
			p.mu.Lock()
			for room, count := range p.mine {
				if _, newer := p.pending[room]; !newer {
					p.pending[room] = count
				}
			}
			p.mu.Unlock()
		}
		p.mu.Lock()
		batch := p.pending
		p.pending = map[string]int{}
		p.mu.Unlock()
		var failed error
		for room, count := range batch {
			if count == 0 {
				delete(p.mine, room)
			} else {
				p.mine[room] = count
			}
			if failed == nil {
				failed = n.putPresence(ctx, room, count)
				if failed == nil {
					continue
				}
			}
			// Not written (the bus is likely gone: the rest of the batch is
			// not tried): queued again unless a newer count is.
			p.mu.Lock()
			if _, newer := p.pending[room]; !newer {
				p.pending[room] = count
			}
			p.mu.Unlock()
		}
		if failed == nil {
			wait = minBackoff
			continue
		}
		if ctx.Err() == nil {
			n.log.Warn("room presence not recorded; retrying", "in", wait, "err", failed)
		}
		again.Reset(wait)
		wait = min(2*wait, n.cfg.Heartbeat)
	}
}

func (n *Node) putPresence(ctx context.Context, room string, count int) error {
	key := presenceKey(room, n.cfg.NodeID)
	if count != 0 {
		n.presence.touched[room] = true // stored or not: deleted at stop
	}
	err := n.retry(ctx, func(ctx context.Context) error {
		if count == 0 {
			return n.presenceKV.Delete(ctx, key)
		}
		_, err := n.presenceKV.PutString(ctx, key, strconv.Itoa(count))
		return err
	})
	if err == nil && count == 0 {
		delete(n.presence.touched, room)
	}
	return err
}

// clearPresence deletes this node's entries (it stops); best effort: what
// is left expires DeadAfter after it was written.
func (n *Node) clearPresence() {
	ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
	defer cancel()
	for room := range n.presence.touched {
		if err := n.presenceKV.Delete(ctx, presenceKey(room, n.cfg.NodeID)); err != nil {
			n.log.Info("room presence left to expire", "room", room, "err", err)
			return
		}
	}
}

// clearStalePresence deletes the entries of this node's id that a previous
// run left (a crash, a failed delete): they are not this run's counts.
func (n *Node) clearStalePresence(ctx context.Context) {
	keys, err := n.bucketKeys(ctx, PresenceBucket, "r.*."+n.cfg.NodeID)
	for _, k := range keys {
		if err == nil {
			err = n.retry(ctx, func(ctx context.Context) error { return n.presenceKV.Delete(ctx, k) })
		}
	}
	if err != nil && ctx.Err() == nil {
		n.log.Info("room presence of a previous run left to expire", "node", n.cfg.NodeID, "err", err)
	}
}

// sweepPresence drops the watched counts older than DeadAfter (a crashed
// node's: the bucket expires them without telling the watch).
func (n *Node) sweepPresence() {
	p := n.presence
	cutoff := n.cfg.Now().Add(-n.cfg.DeadAfter)
	p.mu.Lock()
	defer p.mu.Unlock()
	for room, nodes := range p.counts {
		for node, c := range nodes {
			if !c.at.After(cutoff) {
				delete(nodes, node)
			}
		}
		if len(nodes) == 0 {
			delete(p.counts, room)
		}
	}
}

// watchPresence keeps the counts of every node current until ctx ends,
// watching again (after a backoff) when a watch ends. The caller owns the
// goroutine.
func (n *Node) watchPresence(ctx context.Context) {
	wait := minBackoff
	for ctx.Err() == nil {
		if err := n.watchPresenceOnce(ctx); err != nil && ctx.Err() == nil {
			n.log.Info("watching room presence again", "err", err)
		}
		if !sleep(ctx, wait) {
			return
		}
		wait = min(2*wait, maxBackoff)
	}
}

var errWatchEnded = errors.New("the presence watch ended")

func (n *Node) watchPresenceOnce(ctx context.Context) error {
	var w jetstream.KeyWatcher
	if err := n.retry(ctx, func(actx context.Context) (err error) {
		w, err = n.presenceKV.Watch(ctx, "r.>") // lives as long as ctx, not the attempt
		return err
	}); err != nil {
		return err
	}
	defer func() { _ = w.Stop() }()
	// Stopping the watch closes its updates: the loop below ends with ctx.
	defer context.AfterFunc(ctx, func() { _ = w.Stop() })()
	p := n.presence
	p.mu.Lock()
	p.counts = map[string]map[string]seen{} // the watch starts with every current value
	p.mu.Unlock()
	for e := range w.Updates() {
		if e == nil {
			continue // the initial values are in
		}
		parts := strings.Split(e.Key(), ".")
		if len(parts) != 3 {
			continue
		}
		room, node := parts[1], parts[2]
		count, err := strconv.Atoi(string(e.Value()))
		if e.Operation() != jetstream.KeyValuePut || err != nil {
			count = 0
		}
		p.mu.Lock()
		if count == 0 {
			delete(p.counts[room], node)
			if len(p.counts[room]) == 0 {
				delete(p.counts, room)
			}
		} else {
			if p.counts[room] == nil {
				p.counts[room] = map[string]seen{}
			}
			p.counts[room][node] = seen{count: count, at: e.Created()}
		}
		p.mu.Unlock()
	}
	return errWatchEnded
}
