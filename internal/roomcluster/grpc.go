package roomcluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	clusterv1 "github.com/croupier/croupier/api/synctv/cluster/v1"
	datav1 "github.com/croupier/croupier/api/synctv/data/v1"
	"github.com/croupier/croupier/internal/audit"
	"github.com/croupier/croupier/internal/certs"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Request limits, checked before any work.
const (
	maxAddressLen = 256
	// maxNodePartBytes bounds a node's capabilities and stats (a few
	// numbers in the seed), encoded.
	maxNodePartBytes = 1024
	maxBatchRooms    = 100
	maxBatchUsers    = 1000
	syncEventQueue   = 256
	// maxBeatConflicts bounds the re-reads of a heartbeat whose entry
	// changed between its read and its write.
	maxBeatConflicts = 3
)

// Register serves the ClusterService and DataSyncService on s (a gRPC
// server with mutual TLS: the callers are other nodes).
func (n *Node) Register(s grpc.ServiceRegistrar) {
	clusterv1.RegisterClusterServiceServer(s, clusterServer{n: n})
	datav1.RegisterDataSyncServiceServer(s, dataServer{n: n})
}

// conflict says whether a KV write failed its compare on the revision.
func conflict(err error) bool {
	var api *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) ||
		(errors.As(err, &api) && api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence)
}

func invalid(err error) error { return status.Error(codes.InvalidArgument, err.Error()) }

func unavailable(what string, err error) error {
	return status.Errorf(codes.Unavailable, "%s: %v; retry", what, err)
}

type clusterServer struct {
	clusterv1.UnimplementedClusterServiceServer
	n *Node
}

func (s clusterServer) RegisterNode(ctx context.Context, req *clusterv1.RegisterNodeRequest) (*clusterv1.RegisterNodeResponse, error) {
	if err := checkID("node_id", req.GetNodeId()); err != nil {
		return nil, invalid(err)
	}
	if len(req.GetAddress()) > maxAddressLen {
		return nil, status.Errorf(codes.InvalidArgument, "address is %d bytes, more than %d", len(req.GetAddress()), maxAddressLen)
	}
	if n := proto.Size(req.GetCapabilities()); n > maxNodePartBytes {
		return nil, status.Errorf(codes.InvalidArgument, "capabilities are %d bytes encoded, more than %d", n, maxNodePartBytes)
	}
	info := &clusterv1.NodeInfo{NodeId: req.GetNodeId(), Address: req.GetAddress(), Capabilities: req.GetCapabilities(),
		LastHeartbeat: s.n.cfg.Now().UnixMilli()}
	if err := s.n.putNode(ctx, info); err != nil {
		return nil, unavailable("membership not recorded", err)
	}
	nodes, err := s.n.Nodes(ctx, true)
	if err != nil {
		return nil, unavailable("membership not read", err)
	}
	return &clusterv1.RegisterNodeResponse{Success: true, Nodes: nodes}, nil
}

func (s clusterServer) Heartbeat(ctx context.Context, req *clusterv1.HeartbeatRequest) (*clusterv1.HeartbeatResponse, error) {
	if err := checkID("node_id", req.GetNodeId()); err != nil {
		return nil, invalid(err)
	}
	if n := proto.Size(req.GetStats()); n > maxNodePartBytes {
		return nil, status.Errorf(codes.InvalidArgument, "stats are %d bytes encoded, more than %d", n, maxNodePartBytes)
	}
	// A compare-and-set on the entry's revision: a RegisterNode (a new
	// address) or the node's removal between the read and the write is
	// not undone by this write; the entry is read again instead.
	var now int64
	for attempt := 0; ; attempt++ {
		var e jetstream.KeyValueEntry
		err := s.n.retry(ctx, func(ctx context.Context) (err error) {
			e, err = s.n.nodes.Get(ctx, req.GetNodeId())
			return err
		})
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, status.Errorf(codes.NotFound, "node %s is not registered (or was dead for %v); call RegisterNode first",
				req.GetNodeId(), s.n.cfg.DeadAfter)
		}
		if err != nil {
			return nil, unavailable("membership not read", err)
		}
		info := &clusterv1.NodeInfo{}
		if err := proto.Unmarshal(e.Value(), info); err != nil {
			return nil, status.Errorf(codes.Internal, "membership entry of %s is corrupt", req.GetNodeId())
		}
		now = s.n.cfg.Now().UnixMilli()
		info.Stats, info.LastHeartbeat = req.GetStats(), now
		data, err := proto.Marshal(info)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "membership entry of %s not encodable", req.GetNodeId())
		}
		if hook := s.n.beforeBeatWrite.Load(); hook != nil {
			(*hook)()
		}
		err = s.n.retry(ctx, func(ctx context.Context) error {
			_, err := s.n.nodes.Update(ctx, req.GetNodeId(), data, e.Revision())
			return err
		})
		if err == nil {
			break
		}
		if !conflict(err) {
			return nil, unavailable("heartbeat not recorded", err)
		}
		if attempt == maxBeatConflicts {
			return nil, status.Errorf(codes.Aborted, "the membership entry of %s changed %d times during this heartbeat; send it again",
				req.GetNodeId(), maxBeatConflicts+1)
		}
	}
	return &clusterv1.HeartbeatResponse{Timestamp: now}, nil
}

func (s clusterServer) GetNodes(ctx context.Context, req *clusterv1.GetNodesRequest) (*clusterv1.GetNodesResponse, error) {
	nodes, err := s.n.Nodes(ctx, req.GetOnlyAlive())
	if err != nil {
		return nil, unavailable("membership not read", err)
	}
	return &clusterv1.GetNodesResponse{Nodes: nodes}, nil
}

// LogSeqHeader is the SyncEvents response header that carries the seq
// of the last event of the log before the stream starts.
const LogSeqHeader = "x-croupier-log-seq"

// SyncEvents streams the room event log from now on (seq set) and takes
// every event the caller sends (receive: chat and playback are applied
// through the rooms system, other kinds appended without data; the
// event_id is the message id, so a duplicate is dropped by JetStream and
// an event already applied by the rooms). The call ends when the caller
// closes its side or on an invalid event (INVALID_ARGUMENT naming it).
func (s clusterServer) SyncEvents(stream grpc.BidiStreamingServer[clusterv1.ClusterEvent, clusterv1.ClusterEvent]) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	from, err := s.n.logEnd(ctx)
	if err != nil {
		return unavailable("the event log cannot be read", err)
	}
	// The follower hands events to the sender below through a bounded
	// queue; a caller that does not keep up is cut off.
	out := make(chan *clusterv1.ClusterEvent, syncEventQueue)
	slow := make(chan struct{})
	var slowOnce bool
	f := &follower{js: s.n.js, next: from, handle: func(m jetstream.Msg, meta *jetstream.MsgMetadata) {
		ev := &clusterv1.ClusterEvent{}
		if proto.Unmarshal(m.Data(), ev) != nil {
			return
		}
		ev.Seq = int64(meta.Sequence.Stream)
		select {
		case out <- ev:
		default:
			if !slowOnce {
				slowOnce = true
				close(slow)
			}
		}
	}}
	followed := make(chan struct{})
	go func() { defer close(followed); f.run(ctx) }()
	defer func() { cancel(); <-followed }()
	// The response headers say where the stream starts: every event
	// appended after the caller has them is streamed to it.
	if err := stream.SendHeader(metadata.Pairs(LogSeqHeader, strconv.FormatUint(from-1, 10))); err != nil {
		return err
	}

	// The receive side: one goroutine only calls Recv (it cannot be woken
	// before the handler returns: grpc-go ends a Recv blocked then with
	// the stream's error, and the goroutine calls it no more once ctx is
	// cancelled), another applies what it got and is joined here, so no
	// event is applied or audited after the call ended (Node.Close runs
	// after the gRPC server stopped).
	recvd := make(chan *clusterv1.ClusterEvent)
	recvErr := make(chan error, 2)
	go s.read(ctx, stream, recvd, recvErr)
	taken := make(chan struct{})
	go func() { defer close(taken); s.takeAll(ctx, recvd, recvErr) }()
	defer func() { cancel(); <-taken }()
	for {
		select {
		case ev := <-out:
			if err := stream.Send(ev); err != nil {
				return err
			}
		case <-slow:
			return status.Errorf(codes.ResourceExhausted, "the caller fell more than %d events behind the log; call SyncEvents again", syncEventQueue)
		case err := <-recvErr:
			return err
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}

// read receives the caller's events into recvd until the caller closes
// its side (then it waits for ctx), an error (sent to errs) or ctx ends.
func (s clusterServer) read(ctx context.Context, stream grpc.BidiStreamingServer[clusterv1.ClusterEvent, clusterv1.ClusterEvent],
	recvd chan<- *clusterv1.ClusterEvent, errs chan<- error) {
	for ctx.Err() == nil {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return // keep streaming the log until the caller leaves
		}
		if err != nil {
			errs <- err
			return
		}
		select {
		case recvd <- ev:
		case <-ctx.Done():
			return
		}
	}
}

// takeAll applies the caller's events (see take) until ctx ends or one
// ends the call (its error sent to errs). The caller is another node
// (mutual TLS), possibly written only against the seed, so nothing it
// writes is applied as is:
//   - chat is posted for its user_id (Rooms.RemoteChat: membership,
//     PERMISSION_CHAT, limits and rate as on a stream; stored in the
//     history);
//   - a PlaybackEvent's data is either a synctv.client.RoomState in JSON
//     (movie_id, playing, position, rate, version: the version the change
//     is based on, 0 for last writer wins) or a synctv.client.ServerMessage
//     in JSON carrying a room_state (the format this cluster writes, e.g.
//     an event relayed from the log: its state is the state after a change,
//     so it applies only while the room is at the version before it, and a
//     relay of an event applied already is refused as stale); applied as
//     the node's change, like SyncRoomState (Rooms.SetPlayback:
//     compare-and-set on the stored version; audited as the caller's
//     certificate identity, the claimed node_id in the payload);
//   - room, member and live events are appended without their data:
//     other seed nodes see them, no node applies them.
//
// An event whose envelope is malformed (event_id, node_id, room_id, size)
// ends the call (INVALID_ARGUMENT naming it), and so does a bus this node
// cannot reach (UNAVAILABLE). An event whose data is not decodable, or
// that the rooms refuse (not a member, a missing permission, a stale
// version, a rate limit, an unknown room), is dropped, logged and the call
// goes on: the caller follows the log and sees that it did not happen.
func (s clusterServer) takeAll(ctx context.Context, recvd <-chan *clusterv1.ClusterEvent, errs chan<- error) {
	for {
		select {
		case ev := <-recvd:
			if err := s.take(ctx, ev); err != nil {
				errs <- err
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

// take applies or appends one event a caller sent; an error ends the call.
func (s clusterServer) take(ctx context.Context, ev *clusterv1.ClusterEvent) error {
	if err := checkID("event_id", ev.GetEventId()); err != nil {
		return invalid(err)
	}
	if err := checkID("event "+ev.GetEventId()+": node_id", ev.GetNodeId()); err != nil {
		return invalid(err)
	}
	roomID := roomOf(ev)
	if err := checkID("event "+ev.GetEventId()+": room_id", roomID); err != nil {
		return invalid(err)
	}
	if ev.GetTimestamp() == 0 {
		ev.Timestamp = s.n.cfg.Now().UnixMilli()
	}
	ev.Seq = 0
	if proto.Size(ev) > maxEventBytes {
		return status.Errorf(codes.InvalidArgument, "event %s is more than %d bytes", ev.GetEventId(), maxEventBytes)
	}
	if err := s.n.Check(); err != nil {
		return unavailable("the event log cannot be written", err)
	}
	actx, cancel := context.WithTimeout(ctx, s.n.cfg.PublishTimeout)
	defer cancel()
	var err error
	switch p := ev.Payload.(type) {
	case *clusterv1.ClusterEvent_Chat:
		var rooms Rooms
		if rooms, _, err = s.n.attached(); err != nil {
			return err
		}
		err = rooms.RemoteChat(actx, roomID, ev.GetEventId(), p.Chat.GetUserId(), p.Chat.GetContent())
	case *clusterv1.ClusterEvent_Playback:
		st, derr := playbackState(p.Playback.GetData())
		if derr == nil && st.GetMovieId() != "" {
			derr = checkID("movie_id", st.GetMovieId())
		}
		if derr != nil {
			s.n.log.Info("event from another node dropped", "event", ev.GetEventId(), "node", ev.GetNodeId(), "room", roomID, "err", derr)
			return nil
		}
		err = s.n.nodePlayback(actx, peerActor(ctx), ev.GetNodeId(), roomID, ev.GetEventId(), st)
	default:
		stripData(ev)
		if _, err := s.n.append(actx, roomID, ev); err != nil {
			return unavailable("event "+ev.GetEventId()+" not appended", err)
		}
		return nil
	}
	switch status.Code(err) {
	case codes.OK:
		return nil
	case codes.InvalidArgument:
		return status.Errorf(codes.InvalidArgument, "event %s: %s", ev.GetEventId(), status.Convert(err).Message())
	case codes.PermissionDenied, codes.NotFound, codes.FailedPrecondition, codes.Aborted, codes.ResourceExhausted:
		s.n.log.Info("event from another node refused", "event", ev.GetEventId(), "node", ev.GetNodeId(), "room", roomID,
			"err", status.Convert(err).Message())
		return nil
	}
	return status.Errorf(status.Code(err), "event %s: %s", ev.GetEventId(), status.Convert(err).Message())
}

// playbackState decodes a PlaybackEvent's data: a RoomState in JSON (the
// change and the version it is based on), or a ServerMessage in JSON with
// a room_state (the state after a change: based on the version before).
func playbackState(data []byte) (*clientv1.RoomState, error) {
	msg := &clientv1.ServerMessage{}
	if protojson.Unmarshal(data, msg) == nil && msg.GetRoomState().GetState() != nil {
		st := proto.Clone(msg.GetRoomState().GetState()).(*clientv1.RoomState)
		// Version 1 gives 0, which SetPlayback reads as last writer wins: a
		// relay of a room's first change applies once more (the same
		// state, version 2), its relays after that are stale.
		st.Version = max(st.GetVersion()-1, 0)
		return st, nil
	}
	st := &clientv1.RoomState{}
	if err := protojson.Unmarshal(data, st); err != nil {
		return nil, fmt.Errorf("playback data is neither a synctv.client.RoomState nor a synctv.client.ServerMessage with a room_state in JSON: %w", err)
	}
	return st, nil
}

// peerActor is the audit actor of a call from another node: the identity
// of its verified client certificate (a node_id in a request is only a
// claim).
func peerActor(ctx context.Context) string {
	id, err := certs.IdentityFromContext(ctx)
	if err != nil {
		return "node:unverified"
	}
	return id.String()
}

// nodePlayback is a playback change another node makes through this one
// (SyncRoomState, a PlaybackEvent): applied with the room's authority and
// audited as actor (its certificate), with the node id it claims, made or
// refused.
func (n *Node) nodePlayback(ctx context.Context, actor, claimedNode, roomID, eventID string, st *clientv1.RoomState) error {
	rooms, rec, err := n.attached()
	if err != nil {
		return err
	}
	start := time.Now()
	_, err = rooms.SetPlayback(ctx, roomID, st.GetMovieId(), st.GetPlaying(), st.GetPosition(), st.GetRate(), st.GetVersion())
	if err == nil || n.refusals.Allow() {
		payload := map[string]any{"room_id": roomID}
		if claimedNode != "" {
			payload["node_id"] = claimedNode
		}
		if b, merr := protojson.Marshal(st); merr == nil {
			payload["state"] = json.RawMessage(b)
		}
		if eventID != "" {
			payload["event_id"] = eventID
		}
		if aerr := rec.Record(context.WithoutCancel(ctx), audit.Entry{Actor: actor, Action: ActionNodePlayback,
			Payload: payload, Err: err, Duration: time.Since(start)}); aerr != nil {
			n.log.Error("node playback change not audited", "actor", actor, "room", roomID, "err", aerr)
		}
	}
	return err
}

// ActionNodePlayback is the audit action of a playback change another
// node made (SyncRoomState, a PlaybackEvent sent through SyncEvents).
const ActionNodePlayback = "room.playback.node"

type dataServer struct {
	datav1.UnimplementedDataSyncServiceServer
	n *Node
}

func (s dataServer) SyncRoomState(ctx context.Context, req *datav1.SyncRoomStateRequest) (*datav1.SyncRoomStateResponse, error) {
	if err := checkID("room_id", req.GetRoomId()); err != nil {
		return nil, invalid(err)
	}
	st := req.GetState()
	if st == nil {
		return nil, status.Error(codes.InvalidArgument, "state is required")
	}
	var playing bool
	switch st.GetStatus() {
	case "playing":
		playing = true
	case "paused":
	default:
		return nil, status.Errorf(codes.InvalidArgument, "state.status %q: must be \"playing\" or \"paused\"", truncate(st.GetStatus()))
	}
	if st.GetMovieId() != "" {
		if err := checkID("state.movie_id", st.GetMovieId()); err != nil {
			return nil, invalid(err)
		}
	}
	if req.GetSourceNodeId() != "" {
		if err := checkID("source_node_id", req.GetSourceNodeId()); err != nil {
			return nil, invalid(err)
		}
	}
	// The seed's state has no version: last writer wins.
	if err := s.n.nodePlayback(ctx, peerActor(ctx), req.GetSourceNodeId(), req.GetRoomId(), "", &clientv1.RoomState{MovieId: st.GetMovieId(), Playing: playing,
		Position: st.GetCurrentTime(), Rate: st.GetRate()}); err != nil {
		return nil, err // a gRPC status from the rooms system
	}
	return &datav1.SyncRoomStateResponse{Success: true}, nil
}

func (s dataServer) BatchGetRooms(ctx context.Context, req *datav1.BatchGetRoomsRequest) (*datav1.BatchGetRoomsResponse, error) {
	if len(req.GetRoomIds()) > maxBatchRooms {
		return nil, status.Errorf(codes.InvalidArgument, "%d room_ids: at most %d per call", len(req.GetRoomIds()), maxBatchRooms)
	}
	for _, id := range req.GetRoomIds() {
		if err := checkID("room_id", id); err != nil {
			return nil, invalid(err)
		}
	}
	svc, _, err := s.n.attached()
	if err != nil {
		return nil, err
	}
	rooms, err := svc.RoomsByID(ctx, req.GetRoomIds())
	if err != nil {
		return nil, err
	}
	resp := &datav1.BatchGetRoomsResponse{}
	for _, r := range rooms {
		data, err := protojson.Marshal(r)
		if err != nil {
			return nil, status.Error(codes.Internal, "room not encodable")
		}
		resp.Rooms = append(resp.Rooms, &datav1.RoomInfo{Id: r.GetId(), Name: r.GetName(), MemberCount: r.GetMemberCount(),
			IsLive: svc.IsLive(r.GetId()), Data: data})
	}
	return resp, nil
}

func (s dataServer) GetUserOnlineStatus(ctx context.Context, req *datav1.GetUserOnlineStatusRequest) (*datav1.GetUserOnlineStatusResponse, error) {
	if len(req.GetUserIds()) > maxBatchUsers {
		return nil, status.Errorf(codes.InvalidArgument, "%d user_ids: at most %d per call", len(req.GetUserIds()), maxBatchUsers)
	}
	for _, id := range req.GetUserIds() {
		if err := checkID("user_id", id); err != nil {
			return nil, invalid(err)
		}
	}
	nodes, err := s.n.Nodes(ctx, true)
	if err != nil {
		return nil, unavailable("membership not read", err)
	}
	alive := make(map[string]bool, len(nodes))
	for _, nd := range nodes {
		alive[nd.GetNodeId()] = true
	}
	resp := &datav1.GetUserOnlineStatusResponse{Statuses: make(map[string]*datav1.OnlineStatus, len(req.GetUserIds()))}
	for _, id := range req.GetUserIds() {
		st := &datav1.OnlineStatus{}
		var e jetstream.KeyValueEntry
		err := s.n.retry(ctx, func(ctx context.Context) (err error) {
			e, err = s.n.online.Get(ctx, id)
			return err
		})
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return nil, unavailable("online status not read", err)
		default:
			room, node, _ := strings.Cut(string(e.Value()), " ")
			if alive[node] {
				st.Online, st.RoomId, st.NodeId = true, room, node
			}
		}
		resp.Statuses[id] = st
	}
	return resp, nil
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}
