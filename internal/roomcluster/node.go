package roomcluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	clusterv1 "github.com/croupier/croupier/api/synctv/cluster/v1"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
)

// Names on NATS.
const (
	StreamName    = "SYNCTV_ROOMS"
	NodesBucket   = "synctv_nodes"
	OnlineBucket  = "synctv_online"
	subjectPrefix = "synctv.rooms."
)

// Rooms is what a Node needs of the rooms system (*rooms.Service).
type Rooms interface {
	Deliver(roomID string, seq int64, remote bool, msg *clientv1.ServerMessage)
	SetPlayback(ctx context.Context, roomID, movieID string, playing bool, position, rate float64) (*clientv1.RoomState, error)
	RoomsByID(ctx context.Context, ids []string) ([]*clientv1.Room, error)
}

// Config configures a Node. Zero values pick the documented defaults.
type Config struct {
	// Conn is the node's connection to NATS (required); the caller owns it.
	Conn *nats.Conn
	// NodeID names the node in the cluster (required; letters, digits,
	// '-', '_').
	NodeID string
	// Address is where other nodes reach this node's ClusterService.
	Address      string
	Capabilities *clusterv1.NodeCapabilities
	// Heartbeat is how often the node refreshes its membership entry;
	// default 30 s. DeadAfter is how long an entry lives without one;
	// default 90 s (SyncTV v1.0's values).
	Heartbeat time.Duration
	DeadAfter time.Duration
	// Replicas of the stream and buckets (the NATS cluster's size, at
	// most 5); default 1.
	Replicas int
	// Retention is how long the event log keeps events (the longest a
	// node may be cut off and still catch up); default 1 hour.
	Retention time.Duration
	// PublishTimeout bounds appending one event; default 2 s.
	PublishTimeout time.Duration
	// Stats reports the node's load for heartbeats; nil: none.
	Stats  func() *clusterv1.NodeStats
	Now    func() time.Time
	Logger *slog.Logger
}

// Node is one gateway node of the cluster. It implements rooms.Bus.
type Node struct {
	cfg    Config
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
	nodes  jetstream.KeyValue
	online jetstream.KeyValue
	log    *slog.Logger

	mu    sync.Mutex // guards rooms, cons, stop
	rooms Rooms
	cons  jetstream.ConsumeContext
	stop  context.CancelFunc
	done  chan struct{}
}

// New creates (or updates) the stream and buckets the cluster uses.
func New(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.Conn == nil {
		return nil, errors.New("roomcluster: a NATS connection is required")
	}
	if err := checkID("node id", cfg.NodeID); err != nil {
		return nil, fmt.Errorf("roomcluster: %w", err)
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 30 * time.Second
	}
	if cfg.DeadAfter <= 0 {
		cfg.DeadAfter = 90 * time.Second
	}
	if cfg.DeadAfter <= cfg.Heartbeat {
		return nil, fmt.Errorf("roomcluster: dead-after %v must be longer than the heartbeat %v", cfg.DeadAfter, cfg.Heartbeat)
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.Retention <= 0 {
		cfg.Retention = time.Hour
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 2 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	js, err := jetstream.New(cfg.Conn)
	if err != nil {
		return nil, fmt.Errorf("roomcluster: %w", err)
	}
	n := &Node{cfg: cfg, nc: cfg.Conn, js: js, log: cfg.Logger}
	if n.stream, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: StreamName, Subjects: []string{subjectPrefix + ">"}, Storage: jetstream.FileStorage,
		Replicas: cfg.Replicas, MaxAge: cfg.Retention, Duplicates: 2 * time.Minute,
		MaxMsgSize: maxEventBytes, Discard: jetstream.DiscardOld,
	}); err != nil {
		return nil, fmt.Errorf("roomcluster: create stream %s: %w", StreamName, err)
	}
	if n.nodes, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: NodesBucket, TTL: cfg.DeadAfter, Replicas: cfg.Replicas, Storage: jetstream.FileStorage,
	}); err != nil {
		return nil, fmt.Errorf("roomcluster: create bucket %s: %w", NodesBucket, err)
	}
	if n.online, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: OnlineBucket, Replicas: cfg.Replicas, Storage: jetstream.FileStorage,
	}); err != nil {
		return nil, fmt.Errorf("roomcluster: create bucket %s: %w", OnlineBucket, err)
	}
	return n, nil
}

// ID is the node's id.
func (n *Node) ID() string { return n.cfg.NodeID }

// Start registers the node, starts its heartbeat and delivers the event
// log, from now on, to rooms. Call it once, before the rooms system
// serves anyone.
func (n *Node) Start(ctx context.Context, rooms Rooms) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stop != nil {
		return errors.New("roomcluster: the node is started already")
	}
	if err := n.beat(ctx, nil); err != nil {
		return fmt.Errorf("roomcluster: register node %s: %w", n.cfg.NodeID, err)
	}
	c, err := n.js.OrderedConsumer(ctx, StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subjectPrefix + ">"}, DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		return fmt.Errorf("roomcluster: consume %s: %w", StreamName, err)
	}
	n.rooms = rooms
	if n.cons, err = c.Consume(n.deliver); err != nil {
		return fmt.Errorf("roomcluster: consume %s: %w", StreamName, err)
	}
	hctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	n.stop, n.done = stop, make(chan struct{})
	go n.heartbeats(hctx, n.done)
	return nil
}

// Close stops delivering and heartbeating; the membership entry expires
// DeadAfter later (a crashed node's does too).
func (n *Node) Close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stop == nil {
		return
	}
	n.cons.Stop()
	n.stop()
	<-n.done
}

// deliver is the consumer's handler: one goroutine, log order.
func (n *Node) deliver(m jetstream.Msg) {
	meta, err := m.Metadata()
	if err != nil {
		n.log.Warn("cluster event without metadata", "err", err)
		return
	}
	ev := &clusterv1.ClusterEvent{}
	if err := proto.Unmarshal(m.Data(), ev); err != nil {
		n.log.Warn("cluster event not decodable", "seq", meta.Sequence.Stream, "err", err)
		return
	}
	msg, err := fromEvent(ev)
	if err != nil {
		n.log.Debug("cluster event not applied", "seq", meta.Sequence.Stream, "event", ev.GetEventId(), "err", err)
		return
	}
	roomID := strings.TrimPrefix(m.Subject(), subjectPrefix)
	n.rooms.Deliver(roomID, int64(meta.Sequence.Stream), ev.GetNodeId() != n.cfg.NodeID, msg)
}

// Check implements rooms.Bus.
func (n *Node) Check() error {
	if s := n.nc.Status(); s != nats.CONNECTED {
		return fmt.Errorf("NATS connection is %s", strings.ToLower(s.String()))
	}
	return nil
}

// Publish implements rooms.Bus.
func (n *Node) Publish(ctx context.Context, roomID string, msg *clientv1.ServerMessage) (int64, error) {
	if err := n.Check(); err != nil {
		return 0, err
	}
	ev, err := toEvent(n.cfg.NodeID, roomID, msg)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.cfg.PublishTimeout)
	defer cancel()
	seq, err := n.append(ctx, roomID, ev)
	if err != nil {
		return 0, err
	}
	if u, ok := msg.Payload.(*clientv1.ServerMessage_Member); ok {
		n.trackOnline(ctx, roomID, u.Member)
	}
	return seq, nil
}

// append stores ev in the room's log; a duplicate event_id gets the
// sequence of the copy stored first.
func (n *Node) append(ctx context.Context, roomID string, ev *clusterv1.ClusterEvent) (int64, error) {
	data, err := proto.Marshal(ev)
	if err != nil {
		return 0, err
	}
	ack, err := n.js.Publish(ctx, subject(roomID), data, jetstream.WithMsgID(ev.GetEventId()))
	if err != nil {
		return 0, fmt.Errorf("append to the room log: %w", err)
	}
	return int64(ack.Sequence), nil
}

// Head implements rooms.Bus.
func (n *Node) Head(ctx context.Context, roomID string) (int64, error) {
	m, err := n.stream.GetLastMsgForSubject(ctx, subject(roomID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read the room log's head: %w", err)
	}
	return int64(m.Sequence), nil
}

// trackOnline records where a user's stream is, for GetUserOnlineStatus.
// Best effort: a node that dies leaves entries behind, which are read
// against the live nodes.
func (n *Node) trackOnline(ctx context.Context, roomID string, u *clientv1.MemberUpdate) {
	uid := u.GetMember().GetUser().GetId()
	if checkID("user id", uid) != nil {
		return
	}
	here := roomID + " " + n.cfg.NodeID
	var err error
	switch u.GetKind() {
	case clientv1.MemberUpdate_KIND_ONLINE:
		_, err = n.online.PutString(ctx, uid, here)
	case clientv1.MemberUpdate_KIND_OFFLINE:
		if e, gerr := n.online.Get(ctx, uid); gerr == nil && string(e.Value()) == here {
			err = n.online.Delete(ctx, uid, jetstream.LastRevision(e.Revision()))
		}
	}
	if err != nil {
		n.log.Warn("online status not recorded", "user", uid, "room", roomID, "err", err)
	}
}

func (n *Node) heartbeats(ctx context.Context, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(n.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			var stats *clusterv1.NodeStats
			if n.cfg.Stats != nil {
				stats = n.cfg.Stats()
			}
			bctx, cancel := context.WithTimeout(ctx, n.cfg.Heartbeat)
			if err := n.beat(bctx, stats); err != nil {
				n.log.Warn("heartbeat not recorded", "node", n.cfg.NodeID, "err", err)
			}
			cancel()
		}
	}
}

// beat writes this node's membership entry.
func (n *Node) beat(ctx context.Context, stats *clusterv1.NodeStats) error {
	return n.putNode(ctx, &clusterv1.NodeInfo{NodeId: n.cfg.NodeID, Address: n.cfg.Address,
		Capabilities: n.cfg.Capabilities, Stats: stats, LastHeartbeat: n.cfg.Now().UnixMilli()})
}

func (n *Node) putNode(ctx context.Context, info *clusterv1.NodeInfo) error {
	data, err := proto.Marshal(info)
	if err != nil {
		return err
	}
	_, err = n.nodes.Put(ctx, info.GetNodeId(), data)
	return err
}

// Nodes lists the membership entries (alive: heard from within
// DeadAfter).
func (n *Node) Nodes(ctx context.Context, onlyAlive bool) ([]*clusterv1.NodeInfo, error) {
	lister, err := n.nodes.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	var keys []string
	for k := range lister.Keys() { // closed after the last key
		keys = append(keys, k)
	}
	cutoff := n.cfg.Now().Add(-n.cfg.DeadAfter).UnixMilli()
	out := make([]*clusterv1.NodeInfo, 0, len(keys))
	for _, k := range keys {
		e, err := n.nodes.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		info := &clusterv1.NodeInfo{}
		if err := proto.Unmarshal(e.Value(), info); err != nil {
			return nil, fmt.Errorf("membership entry %s: %w", k, err)
		}
		if onlyAlive && info.GetLastHeartbeat() < cutoff {
			continue
		}
		out = append(out, info)
	}
	return out, nil
}
