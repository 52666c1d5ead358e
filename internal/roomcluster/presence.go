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
// OnlineBucket under presenceKey(room, node) (deleted at 0) and watches
// every node's; a count reads as this node's own (exact, from the rooms
// system) plus those of the other live nodes as last seen (a change on
// another node shows here within one append-and-watch round trip). Entries
// of a node that stopped are deleted by it; a crashed node's are left
// behind and ignored once its membership entry is dead (checked at each
// heartbeat).
//
// The writer coalesces: Online (called with a room's lock held) only
// records the room's latest count and wakes the writer, so a burst of
// opens and closes costs one write per room, and the pending set is
// bounded by the number of rooms.
type presence struct {
	mu      sync.Mutex
	pending map[string]int             // room -> this node's count, not yet written
	written map[string]bool            // rooms this node has a non-zero entry for (writer goroutine only)
	counts  map[string]map[string]seen // room -> node -> count, from the watch
	// alive are the live nodes as of aliveAt (the last heartbeat); nil:
	// not known yet (all count). A node missing from it still counts if
	// its entry is newer (a node that just joined).
	alive   map[string]bool
	aliveAt time.Time
	wake    chan struct{}
}

// presenceKey is the presence entry of a node in a room. Room and node ids
// have no '.', user ids (the bucket's other keys) none either.
func presenceKey(room, node string) string { return "r." + room + "." + node }

// seen is a node's count in a room and when it was written.
type seen struct {
	count int
	at    time.Time
}

func newPresence() *presence {
	return &presence{pending: map[string]int{}, written: map[string]bool{}, counts: map[string]map[string]seen{},
		wake: make(chan struct{}, 1)}
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
// the other live nodes, as last seen.
func (n *Node) OnlineElsewhere(roomID string) int {
	p := n.presence
	p.mu.Lock()
	defer p.mu.Unlock()
	total := 0
	for node, c := range p.counts[roomID] {
		if node != n.cfg.NodeID && (p.alive == nil || p.alive[node] || c.at.After(p.aliveAt)) {
			total += c.count
		}
	}
	return total
}

// writePresence writes the pending counts until ctx ends, then deletes
// this node's entries. The caller owns the goroutine.
func (n *Node) writePresence(ctx context.Context) {
	p := n.presence
	for {
		select {
		case <-ctx.Done():
			n.clearPresence()
			return
		case <-p.wake:
		}
		p.mu.Lock()
		batch := p.pending
		p.pending = map[string]int{}
		p.mu.Unlock()
		for room, count := range batch {
			if err := n.putPresence(ctx, room, count); err != nil && ctx.Err() == nil {
				n.log.Warn("room presence not recorded", "room", room, "count", count, "err", err)
			}
		}
	}
}

func (n *Node) putPresence(ctx context.Context, room string, count int) error {
	key := presenceKey(room, n.cfg.NodeID)
	err := n.retry(ctx, func(ctx context.Context) error {
		if count == 0 {
			return n.online.Delete(ctx, key)
		}
		_, err := n.online.PutString(ctx, key, strconv.Itoa(count))
		return err
	})
	if err == nil {
		if count == 0 {
			delete(n.presence.written, room)
		} else {
			n.presence.written[room] = true
		}
	}
	return err
}

// clearPresence deletes this node's entries (it stops); best effort.
func (n *Node) clearPresence() {
	ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
	defer cancel()
	for room := range n.presence.written {
		if err := n.online.Delete(ctx, presenceKey(room, n.cfg.NodeID)); err != nil {
			n.log.Info("room presence left behind", "room", room, "err", err)
			return
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
		w, err = n.online.Watch(ctx, "r.>") // lives as long as ctx, not the attempt
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

// refreshAlive reads which nodes are alive, for OnlineElsewhere.
func (n *Node) refreshAlive(ctx context.Context) {
	at := n.cfg.Now()
	nodes, err := n.Nodes(ctx, true)
	if err != nil {
		n.log.Info("live nodes not read; room presence counts every node", "err", err)
		return
	}
	alive := make(map[string]bool, len(nodes))
	for _, nd := range nodes {
		alive[nd.GetNodeId()] = true
	}
	n.presence.mu.Lock()
	n.presence.alive, n.presence.aliveAt = alive, at
	n.presence.mu.Unlock()
}
