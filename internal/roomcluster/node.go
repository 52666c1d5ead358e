package roomcluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	clusterv1 "github.com/croupier/croupier/api/synctv/cluster/v1"
	"github.com/croupier/croupier/internal/audit"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Names on NATS.
const (
	StreamName   = "SYNCTV_ROOMS"
	NodesBucket  = "synctv_nodes"
	OnlineBucket = "synctv_online"
	// PresenceBucket holds each node's stream count per room (presence.go);
	// entries live DeadAfter unless written again.
	PresenceBucket = "synctv_presence"
	subjectPrefix  = "synctv.rooms."
)

// Rooms is what a Node needs of the rooms system (*rooms.Service).
type Rooms interface {
	Deliver(roomID string, seq int64, remote, more bool, msg *clientv1.ServerMessage)
	SetPlayback(ctx context.Context, roomID, movieID string, playing bool, position, rate float64, version int64) (*clientv1.RoomState, error)
	RemoteChat(ctx context.Context, roomID, eventID, userID, content string) error
	RoomsByID(ctx context.Context, ids []string) ([]*clientv1.Room, error)
	IsLive(roomID string) bool
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
	// PublishTimeout bounds appending one event, repeats included (an
	// append is repeated while the stream elects a leader); default 12 s,
	// longer than one raft election. Reads and membership writes that
	// have no caller's deadline get the same bound.
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
	// presenceKV is PresenceBucket.
	presenceKV jetstream.KeyValue
	log        *slog.Logger
	// presence: this node's stream counts per room and the other nodes'
	// (presence.go).
	presence *presence
	// refusals limits the audit rows of refused node changes (any node
	// with a certificate can make them).
	refusals *rate.Limiter

	mu    sync.Mutex // guards rooms, audit, stop
	rooms Rooms
	audit audit.Recorder
	stop  context.CancelFunc
	wg    sync.WaitGroup // the follower and the heartbeat loop

	// beforeBeatWrite, if set (tests), runs in Heartbeat between reading
	// the entry and writing it.
	beforeBeatWrite atomic.Pointer[func()]
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
		cfg.PublishTimeout = defaultOpTimeout
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
	n := &Node{cfg: cfg, nc: cfg.Conn, js: js, log: cfg.Logger, refusals: audit.NewRefusalLimiter(), presence: newPresence()}
	if err := n.retry(ctx, func(ctx context.Context) (err error) {
		n.stream, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name: StreamName, Subjects: []string{subjectPrefix + ">"}, Storage: jetstream.FileStorage,
			Replicas: cfg.Replicas, MaxAge: cfg.Retention, Duplicates: 2 * time.Minute,
			MaxMsgSize: maxEventBytes, Discard: jetstream.DiscardOld,
		})
		return err
	}); err != nil {
		return nil, fmt.Errorf("roomcluster: create stream %s: %w", StreamName, err)
	}
	if err := n.retry(ctx, func(ctx context.Context) (err error) {
		n.nodes, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: NodesBucket, TTL: cfg.DeadAfter, Replicas: cfg.Replicas, Storage: jetstream.FileStorage,
		})
		return err
	}); err != nil {
		return nil, fmt.Errorf("roomcluster: create bucket %s: %w", NodesBucket, err)
	}
	if err := n.retry(ctx, func(ctx context.Context) (err error) {
		n.online, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: OnlineBucket, Replicas: cfg.Replicas, Storage: jetstream.FileStorage,
		})
		return err
	}); err != nil {
		return nil, fmt.Errorf("roomcluster: create bucket %s: %w", OnlineBucket, err)
	}
	if err := n.retry(ctx, func(ctx context.Context) (err error) {
		n.presenceKV, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: PresenceBucket, TTL: cfg.DeadAfter, Replicas: cfg.Replicas, Storage: jetstream.FileStorage,
		})
		return err
	}); err != nil {
		return nil, fmt.Errorf("roomcluster: create bucket %s: %w", PresenceBucket, err)
	}
	return n, nil
}

// ID is the node's id.
func (n *Node) ID() string { return n.cfg.NodeID }

// attached is the rooms system Start attached, or UNAVAILABLE before: the
// node's services can be served before its rooms system runs.
func (n *Node) attached() (Rooms, audit.Recorder, error) {
	n.mu.Lock()
	r, rec := n.rooms, n.audit
	n.mu.Unlock()
	if r == nil {
		return nil, nil, status.Errorf(codes.Unavailable, "node %s: its rooms system is not running (yet); ask another node", n.cfg.NodeID)
	}
	return r, rec, nil
}

// Start registers the node, starts its heartbeat and delivers the event
// log, from now on, to rooms. Call it once, before the rooms system
// serves anyone. rec (required) records the playback changes other nodes
// make through this node (SyncRoomState, PlaybackEvents sent through
// SyncEvents), made and refused (refusals rate limited): they act with a
// room's full authority.
func (n *Node) Start(ctx context.Context, rooms Rooms, rec audit.Recorder) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stop != nil {
		return errors.New("roomcluster: the node is started already")
	}
	if rec == nil {
		return errors.New("roomcluster: an audit recorder is required (other nodes change playback through this one)")
	}
	if err := n.beat(ctx, nil); err != nil {
		return fmt.Errorf("roomcluster: register node %s: %w", n.cfg.NodeID, err)
	}
	from, err := n.logEnd(ctx)
	if err != nil {
		return fmt.Errorf("roomcluster: read the head of %s: %w", StreamName, err)
	}
	n.rooms, n.audit = rooms, rec
	fctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	n.stop = stop
	f := &follower{js: n.js, next: from, handle: n.deliver, onErr: func(err error) {
		n.log.Info("following the room log again", "node", n.cfg.NodeID, "err", err)
	}}
	n.wg.Add(4)
	go func() { defer n.wg.Done(); f.run(fctx) }()
	go func() { defer n.wg.Done(); n.heartbeats(fctx) }()
	go func() { defer n.wg.Done(); n.writePresence(fctx) }()
	go func() { defer n.wg.Done(); n.watchPresence(fctx) }()
	return nil
}

// Close stops delivering and heartbeating and removes the node's
// membership entry (a crashed node's expires DeadAfter after its last
// heartbeat).
func (n *Node) Close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stop == nil {
		return
	}
	n.stop()
	n.wg.Wait()
	n.stop = func() {}
	ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
	defer cancel()
	if err := n.nodes.Delete(ctx, n.cfg.NodeID); err != nil {
		n.log.Info("membership entry left to expire", "node", n.cfg.NodeID, "err", err)
	}
}

// deliver is the follower's handler: one goroutine, log order, each
// message once.
func (n *Node) deliver(m jetstream.Msg, meta *jetstream.MsgMetadata) {
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
	n.rooms.Deliver(roomID, int64(meta.Sequence.Stream), ev.GetNodeId() != n.cfg.NodeID, meta.NumPending > 0, msg)
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

// append stores ev in the room's log, repeating the append until it is
// acknowledged or ctx ends; a duplicate event_id (a repeat, or an event
// sent twice) gets the sequence of the copy stored first.
func (n *Node) append(ctx context.Context, roomID string, ev *clusterv1.ClusterEvent) (int64, error) {
	data, err := proto.Marshal(ev)
	if err != nil {
		return 0, err
	}
	var seq int64
	err = n.retry(ctx, func(ctx context.Context) error {
		if n.nc.IsClosed() {
			return nats.ErrConnectionClosed
		}
		ack, err := n.js.Publish(ctx, subject(roomID), data, jetstream.WithMsgID(ev.GetEventId()))
		if err != nil {
			return err
		}
		seq = int64(ack.Sequence)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("append to the room log: %w", err)
	}
	return seq, nil
}

// Head implements rooms.Bus.
func (n *Node) Head(ctx context.Context, roomID string) (int64, error) {
	var seq int64
	err := n.retry(ctx, func(ctx context.Context) error {
		m, err := n.stream.GetLastMsgForSubject(ctx, subject(roomID))
		if err != nil {
			return err
		}
		seq = int64(m.Sequence)
		return nil
	})
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read the room log's head: %w", err)
	}
	return seq, nil
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
	err := n.retry(ctx, func(ctx context.Context) error {
		switch u.GetKind() {
		case clientv1.MemberUpdate_KIND_ONLINE:
			_, err := n.online.PutString(ctx, uid, here)
			return err
		case clientv1.MemberUpdate_KIND_OFFLINE:
			e, err := n.online.Get(ctx, uid)
			if errors.Is(err, jetstream.ErrKeyNotFound) {
				return nil
			}
			if err != nil || string(e.Value()) != here {
				return err
			}
			// Not if the user went online elsewhere meanwhile.
			if err := n.online.Delete(ctx, uid, jetstream.LastRevision(e.Revision())); !errors.Is(err, jetstream.ErrKeyExists) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		n.log.Warn("online status not recorded", "user", uid, "room", roomID, "err", err)
	}
}

func (n *Node) heartbeats(ctx context.Context) {
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
			bctx, cancel := context.WithTimeout(ctx, n.cfg.PublishTimeout) // the ticker drops the beats a slow one overlaps
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
	return n.retry(ctx, func(ctx context.Context) error {
		_, err := n.nodes.Put(ctx, info.GetNodeId(), data)
		return err
	})
}

// bucketKeys lists the keys of a KV bucket that match filter (a subject
// pattern over the keys: ">" for all). They come from the bucket stream's
// subjects, one snapshot the server takes: a KeyValue.Keys watcher can end
// its listing before a key that was rewritten meanwhile (heartbeats rewrite
// every key).
func (n *Node) bucketKeys(ctx context.Context, bucket, filter string) ([]string, error) {
	prefix := "$KV." + bucket + "."
	var keys []string
	err := n.retry(ctx, func(ctx context.Context) error {
		s, err := n.js.Stream(ctx, "KV_"+bucket)
		if err != nil {
			return err
		}
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(prefix+filter))
		if err != nil {
			return err
		}
		keys = keys[:0]
		for subj := range info.State.Subjects {
			keys = append(keys, strings.TrimPrefix(subj, prefix))
		}
		return nil
	})
	return keys, err
}

// Nodes lists the membership entries (alive: heard from within
// DeadAfter).
func (n *Node) Nodes(ctx context.Context, onlyAlive bool) ([]*clusterv1.NodeInfo, error) {
	keys, err := n.bucketKeys(ctx, NodesBucket, ">")
	if err != nil {
		return nil, err
	}
	slices.Sort(keys)
	cutoff := n.cfg.Now().Add(-n.cfg.DeadAfter).UnixMilli()
	out := make([]*clusterv1.NodeInfo, 0, len(keys))
	for _, k := range keys {
		var e jetstream.KeyValueEntry
		err := n.retry(ctx, func(ctx context.Context) (err error) {
			e, err = n.nodes.Get(ctx, k)
			return err
		})
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
