package live

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"github.com/croupier/croupier/internal/rooms"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
)

// Rooms is what live needs of the rooms system (rooms.Service).
type Rooms interface {
	PublishKey(ctx context.Context, roomID, key string) (name, holder string, err error)
	AuthorizeViewer(ctx context.Context, bearer, roomID string) (rooms.Caller, error)
	LiveEvent(ctx context.Context, roomID string, ev *clientv1.LiveEvent)
}

// AuditEvent is a security-relevant live event: a publish refused for a
// wrong or revoked key, a publisher cut off, a stream stopped by
// StopStream.
type AuditEvent struct {
	Action, RoomID, Stream, Remote, Reason string
}

// The actions of AuditEvent.
const (
	ActionPublishRefused = "publish refused"
	ActionPublishCutOff  = "publish cut off"
	ActionStreamStopped  = "stream stopped"
)

// Config configures a Node. Zero values pick the documented defaults.
type Config struct {
	// NodeID names this gateway node in leases, relays and LiveEvents.
	NodeID string
	// RTMPAddr is the RTMP ingest listener; "" disables ingest.
	RTMPAddr string
	// RTMPSAddr is an RTMP-over-TLS listener (publish and play as on
	// RTMPAddr) presenting RTMPSTLS; "" disables it.
	RTMPSAddr string
	RTMPSTLS  *tls.Config
	// RelayAddr is where other nodes reach this node's StreamRelayService
	// (recorded in the lease); "" when the node does not serve relays.
	RelayAddr string
	// MaxStreams bounds the streams published on this node
	// (NodeCapabilities.max_streams); default 16.
	MaxStreams int
	// ViewerQueue bounds the tags queued for one viewer; default 1024.
	ViewerQueue int
	// MaxViewersPerUser bounds the connections (HTTP-FLV and RTMP play)
	// one member watches one stream on, on this node; default 4.
	MaxViewersPerUser int
	// ViewerWriteTimeout cuts off an HTTP-FLV or RTMP viewer one write to
	// which takes longer (a player that stopped reading); default 10 s.
	ViewerWriteTimeout time.Duration
	// MaxLag skips a viewer that reads tags queued longer ago than this
	// to the next keyframe (emptying its queue); default 1 s.
	MaxLag time.Duration
	// GOPCacheBytes bounds the GOP replayed to a new viewer; default 8 MiB.
	GOPCacheBytes int
	// IdleTimeout ends a publisher that sends nothing for this long;
	// default 30 s.
	IdleTimeout time.Duration
	// KeyCheckInterval is how often a publisher's stream key is checked
	// again (Rooms.PublishKey): a key rotated or revoked on another node,
	// or a holder banned there, cuts the publisher off within it even if
	// this node missed the change; default 2 s.
	KeyCheckInterval time.Duration
	Rooms            Rooms
	// Leases are the cluster's publisher leases (KVLeases); nil: a node
	// alone, without a cluster bus (MemLeases).
	Leases Leases
	// RelayDial opens a client connection to another node's
	// StreamRelayService (mTLS); nil: this node cannot pull relays.
	RelayDial func(addr string) (*grpc.ClientConn, error)
	// Audit receives refusals; nil: they are only logged.
	Audit      func(AuditEvent)
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Node is the live system of one gateway node: RTMP ingest, the streams
// published or relayed here, HTTP-FLV playback and StreamRelayService.
type Node struct {
	cfg Config
	log *slog.Logger
	m   *metrics

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the node starts
	ln     net.Listener   // RTMP
	tlsLn  net.Listener   // RTMPS

	mu      sync.Mutex
	closed  bool
	streams map[string]*stream // by path
	// leases are the cluster's live leases as the watcher last saw
	// them, by path (LiveStreams).
	leases map[string]LeaseChange
	conns  map[net.Conn]struct{}
	local  int // streams published here
}

// New checks cfg and returns a Node; Start opens its RTMP listener.
func New(cfg Config) (*Node, error) {
	if cfg.Rooms == nil {
		return nil, errors.New("live: Config.Rooms is required")
	}
	if cfg.RTMPSAddr != "" && cfg.RTMPSTLS == nil {
		return nil, errors.New("live: the RTMPS listener needs a TLS certificate (Config.RTMPSTLS)")
	}
	if cfg.NodeID == "" {
		cfg.NodeID = "local"
	}
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = 16
	}
	if cfg.ViewerQueue <= 0 {
		cfg.ViewerQueue = 1024
	}
	if cfg.MaxViewersPerUser <= 0 {
		cfg.MaxViewersPerUser = 4
	}
	if cfg.ViewerWriteTimeout <= 0 {
		cfg.ViewerWriteTimeout = 10 * time.Second
	}
	if cfg.ViewerQueue < 16 {
		return nil, fmt.Errorf("live: ViewerQueue %d is too small: at least 16 tags", cfg.ViewerQueue)
	}
	if cfg.MaxLag <= 0 {
		cfg.MaxLag = time.Second
	}
	if cfg.GOPCacheBytes <= 0 {
		cfg.GOPCacheBytes = 8 << 20
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 30 * time.Second
	}
	if cfg.KeyCheckInterval <= 0 {
		cfg.KeyCheckInterval = 2 * time.Second
	}
	if cfg.Leases == nil {
		cfg.Leases = NewMemLeases(10*time.Second, nil)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Node{cfg: cfg, log: cfg.Logger, m: newMetrics(cfg.Registerer), ctx: ctx, cancel: cancel,
		streams: map[string]*stream{}, leases: map[string]LeaseChange{}, conns: map[net.Conn]struct{}{}}, nil
}

// NodeID is the node's id.
func (n *Node) NodeID() string { return n.cfg.NodeID }

// Start starts watching the cluster's leases and opens the RTMP listener
// (if configured) and serves it.
func (n *Node) Start() error {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.cfg.Leases.Watch(n.ctx, n.leaseChanged)
	}()
	if n.cfg.RTMPAddr != "" {
		ln, err := net.Listen("tcp", n.cfg.RTMPAddr)
		if err != nil {
			return fmt.Errorf("live: RTMP listener: %w", err)
		}
		n.ln = ln
		n.wg.Add(1)
		go n.acceptRTMP(ln)
		n.log.Info("RTMP ingest listening", "addr", ln.Addr().String())
	}
	if n.cfg.RTMPSAddr != "" {
		ln, err := tls.Listen("tcp", n.cfg.RTMPSAddr, n.cfg.RTMPSTLS)
		if err != nil {
			return fmt.Errorf("live: RTMPS listener: %w", err)
		}
		n.tlsLn = ln
		n.wg.Add(1)
		go n.acceptRTMP(ln)
		n.log.Info("RTMPS ingest listening", "addr", ln.Addr().String())
	}
	return nil
}

// RTMPSAddr is the bound RTMPS address ("" without a listener).
func (n *Node) RTMPSAddr() string {
	if n.tlsLn == nil {
		return ""
	}
	return n.tlsLn.Addr().String()
}

// RTMPAddr is the bound RTMP address ("" without a listener).
func (n *Node) RTMPAddr() string {
	if n.ln == nil {
		return ""
	}
	return n.ln.Addr().String()
}

// Close stops ingest, ends every stream (releasing their leases) and
// waits for the node's goroutines.
func (n *Node) Close() {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.closed = true
	for c := range n.conns {
		_ = c.Close()
	}
	streams := make([]*stream, 0, len(n.streams))
	for _, s := range n.streams {
		streams = append(streams, s)
	}
	n.mu.Unlock()
	for _, ln := range []net.Listener{n.ln, n.tlsLn} {
		if ln != nil {
			_ = ln.Close()
		}
	}
	for _, s := range streams {
		s.stop()
	}
	n.cancel()
	n.wg.Wait()
}

// lookup returns the stream of path on this node, or nil.
func (n *Node) lookup(path string) *stream {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.streams[path]
}

// remove drops s from the node if it is still the one under its path.
func (n *Node) remove(s *stream) {
	n.mu.Lock()
	if n.streams[s.path] == s {
		delete(n.streams, s.path)
		if !s.relayed {
			n.local--
		}
		n.m.streams.Dec()
	}
	n.mu.Unlock()
}

// liveEvent tells the room's members that a stream started or stopped.
func (n *Node) liveEvent(s *stream, typ clientv1.LiveEvent_Type) {
	n.announce(s.roomID, s.name, s.nodeID, s.epoch, typ)
}

func (n *Node) announce(roomID, name, nodeID string, epoch int64, typ clientv1.LiveEvent_Type) {
	n.cfg.Rooms.LiveEvent(n.ctx, roomID, liveEvent(roomID, name, nodeID, epoch, typ))
}

func liveEvent(roomID, name, nodeID string, epoch int64, typ clientv1.LiveEvent_Type) *clientv1.LiveEvent {
	return &clientv1.LiveEvent{Type: typ, StreamKey: roomID + "/" + name, PlayPath: PlayPath(roomID, name), Epoch: epoch,
		Data: fmt.Appendf(nil, `{"node_id":%q,"epoch":%d}`, nodeID, epoch)}
}

// leaseChanged applies a change of the cluster's leases (Leases.Watch):
// a stream of an older epoch than the lease's, relayed or published here,
// is fenced off; a relay of a lease that ended stops; and the node that
// won an expired lease tells the room STOPPED for the node that died.
func (n *Node) leaseChanged(c LeaseChange) {
	n.mu.Lock()
	if c.Kind == LeaseTaken {
		n.leases[c.Path] = c
	} else if n.leases[c.Path].Epoch == c.Epoch {
		delete(n.leases, c.Path)
	}
	s := n.streams[c.Path]
	n.mu.Unlock()
	switch c.Kind {
	case LeaseTaken:
		if s != nil && s.epoch < c.Epoch {
			n.log.Warn("live: a newer publisher took the stream; stopping this epoch", "stream", c.Path,
				"epoch", s.epoch, "new_epoch", c.Epoch, "new_node", c.Holder.NodeID)
			s.stop()
		}
	case LeaseReleased, LeaseExpired:
		if s == nil || s.epoch != c.Epoch {
			break
		}
		if !s.relayed {
			// Our own lease expired (we could not renew it): the stream
			// stops and endPublish announces it.
			n.log.Warn("live: publisher lease expired; stopping the stream", "stream", c.Path, "epoch", c.Epoch)
			s.stop()
			return
		}
		s.stop()
	}
	if c.Kind == LeaseExpired && c.Announce {
		room, name, _ := cutPath(c.Path)
		n.log.Warn("live: the publisher's node stopped renewing its lease; announcing STOPPED", "stream", c.Path,
			"epoch", c.Epoch, "node", c.Holder.NodeID)
		n.announce(room, name, c.Holder.NodeID, c.Epoch, clientv1.LiveEvent_STOPPED)
	}
}

// maxListed bounds the live streams LiveStreams lists for one room.
const maxListed = 16

// LiveStreams lists the room's live streams as LiveEvent STARTED (for
// rooms.Service.OnLiveStreams): those published on this node and those
// the cluster's leases name. It does not block on the network.
func (n *Node) LiveStreams(roomID string) []*clientv1.LiveEvent {
	type live struct {
		name, node string
		epoch      int64
	}
	var found []live
	seen := map[string]bool{}
	n.mu.Lock()
	for path, s := range n.streams {
		if s.roomID == roomID && !s.relayed && len(found) < maxListed {
			found, seen[path] = append(found, live{s.name, s.nodeID, s.epoch}), true
		}
	}
	for path, c := range n.leases {
		room, name, _ := cutPath(path)
		if room == roomID && !seen[path] && len(found) < maxListed {
			found = append(found, live{name, c.Holder.NodeID, c.Epoch})
		}
	}
	n.mu.Unlock()
	out := make([]*clientv1.LiveEvent, 0, len(found))
	for _, f := range found {
		out = append(out, liveEvent(roomID, f.name, f.node, f.epoch, clientv1.LiveEvent_STARTED))
	}
	return out
}

// PlayPath is where a stream plays on the rooms listener.
func PlayPath(roomID, name string) string { return "/live/" + roomID + "/" + name + ".flv" }

// Revoke ends what a member may no longer do with the room's live streams
// on this node (for rooms.Service.OnLiveRevoked): their publishes are cut
// off as a rotated key's are, with rv.Watch their HTTP-FLV and RTMP
// viewers are ended too, and without a user (the room was deleted) every
// stream of the room stops, published or relayed, its viewers with it.
// It does not block.
func (n *Node) Revoke(rv rooms.LiveRevocation) {
	for _, s := range n.roomStreams(rv.RoomID) {
		switch {
		case rv.UserID == "":
			n.log.Info("live: room deleted; stopping the stream", "stream", s.path, "epoch", s.epoch)
			s.stop()
			continue
		case !s.relayed && s.publisher == rv.UserID:
			n.cutOff(s, reasonHolderRevoked)
		}
		if rv.Watch {
			s.dropViewer(rv.UserID)
		}
	}
}

// roomStreams returns the room's streams on this node, published or
// relayed.
func (n *Node) roomStreams(roomID string) []*stream {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []*stream
	for _, s := range n.streams {
		if s.roomID == roomID {
			out = append(out, s)
		}
	}
	return out
}

// Concerns reports whether rv would end anything on this node: a stream
// of the room the user publishes here or watches (any stream of the room
// for a deleted room). It does not block; rooms asks it before reading a
// remote change's membership, so that nodes without such a stream skip
// the read.
func (n *Node) Concerns(rv rooms.LiveRevocation) bool {
	for _, s := range n.roomStreams(rv.RoomID) {
		if rv.UserID == "" || !s.relayed && s.publisher == rv.UserID || rv.Watch && s.watchedBy(rv.UserID) {
			return true
		}
	}
	return false
}

// StreamKeyChanged cuts off a publisher of the stream on this node (its key
// was rotated or revoked).
func (n *Node) StreamKeyChanged(roomID, name string) {
	if s := n.lookup(roomID + "/" + name); s != nil && !s.relayed {
		n.cutOff(s, reasonBadKey)
	}
}

// The reasons a publish is refused or cut off for its key.
const (
	reasonBadKey        = "unknown or revoked stream key"
	reasonHolderRevoked = "the key's holder may no longer publish (left, banned or without LIVE)"
)

// cutOff stops a stream published here whose key no longer publishes,
// once, with one audit event ActionPublishCutOff (recorded on a goroutine
// of the node) whichever of the key checks and the revocations saw it
// first. It does not block.
func (n *Node) cutOff(s *stream, reason string) {
	s.cutOff.Do(func() {
		s.stop()
		// Revoke runs on the rooms' delivery goroutine and must not wait
		// for the audit row; a node closing audits nothing more.
		ev := AuditEvent{Action: ActionPublishCutOff, RoomID: s.roomID, Stream: s.name, Remote: s.remote, Reason: reason}
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.closed {
			n.log.Warn("live: "+ev.Action, "room", ev.RoomID, "stream", ev.Stream, "remote", ev.Remote, "reason", ev.Reason)
			return
		}
		n.wg.Go(func() { n.audit(ev) })
	})
}

func (n *Node) audit(ev AuditEvent) {
	n.log.Warn("live: "+ev.Action, "room", ev.RoomID, "stream", ev.Stream, "remote", ev.Remote, "reason", ev.Reason)
	if n.cfg.Audit != nil {
		n.cfg.Audit(ev)
	}
}
