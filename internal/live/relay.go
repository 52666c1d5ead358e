package live

import (
	"context"
	"errors"
	"fmt"
	"io"

	streamv1 "github.com/croupier/croupier/api/synctv/stream/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// errNotLive: nobody publishes the stream.
var errNotLive = errors.New("the stream is not live")

// streamFor returns the stream of path on this node: the local publisher,
// a running relay, or a new relay from the lease holder's node.
func (n *Node) streamFor(ctx context.Context, path, roomID, name string) (*stream, error) {
	if s := n.lookup(path); s != nil {
		return s, nil
	}
	h, epoch, ok, err := n.cfg.Leases.Lookup(ctx, path)
	switch {
	case err != nil:
		return nil, fmt.Errorf("stream %s: lease lookup: %w", path, err)
	case !ok:
		return nil, fmt.Errorf("stream %s: %w", path, errNotLive)
	case h.NodeID == n.cfg.NodeID:
		return nil, fmt.Errorf("stream %s: %w (its publisher on this node just ended)", path, errNotLive)
	case n.cfg.RelayDial == nil || h.RelayAddr == "":
		return nil, fmt.Errorf("stream %s is published on node %s and relays are not configured", path, h.NodeID)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if s := n.streams[path]; s != nil {
		return s, nil // another viewer started the relay meanwhile
	}
	if n.closed {
		return nil, errors.New("node closing")
	}
	cc, err := n.cfg.RelayDial(h.RelayAddr)
	if err != nil {
		return nil, fmt.Errorf("stream %s: relay from node %s: %w", path, h.NodeID, err)
	}
	pctx, cancel := context.WithCancel(n.ctx)
	s := newStream(path, roomID, name, h.NodeID, epoch, true, n.cfg.ViewerQueue, n.cfg.GOPCacheBytes, n.m)
	s.stop = cancel
	n.streams[path] = s
	n.m.streams.Inc()
	n.m.relayPulls.Inc()
	n.wg.Add(1)
	go n.pull(pctx, s, cc)
	return s, nil
}

// pull copies the publisher node's packets into s until the publisher
// stops, the epoch is superseded, the last viewer leaves or the node
// closes. It owns cc.
func (n *Node) pull(ctx context.Context, s *stream, cc *grpc.ClientConn) {
	defer n.wg.Done()
	defer n.m.relayPulls.Dec()
	defer cc.Close()
	defer func() {
		s.stop()
		s.end()
		n.remove(s)
	}()
	st, err := streamv1.NewStreamRelayServiceClient(cc).PullRtmpStream(ctx,
		&streamv1.PullRtmpRequest{StreamKey: s.path, RequestingNodeId: n.cfg.NodeID, Epoch: s.epoch})
	if err != nil {
		n.log.Warn("live: relay pull failed", "stream", s.path, "from", s.nodeID, "err", err)
		return
	}
	for {
		p, err := st.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				n.log.Warn("live: relay pull ended", "stream", s.path, "from", s.nodeID, "err", err)
			}
			return
		}
		t, err := tagFromPacket(p)
		if err != nil {
			n.log.Warn("live: bad relay packet; ending the relay", "stream", s.path, "from", s.nodeID, "err", err)
			return
		}
		s.write(t)
	}
}

// leave detaches a viewer; a relayed stream without viewers stops pulling
// (a viewer arriving meanwhile sees it end and reconnects to a new pull).
func (n *Node) leave(s *stream, v *viewer) {
	if s.unsubscribe(v) == 0 && s.relayed {
		s.stop()
	}
}

// tagFromPacket checks a relay packet and turns it into a tag.
func tagFromPacket(p *streamv1.RtmpPacket) (Tag, error) {
	var typ uint8
	switch p.GetType() {
	case streamv1.RtmpPacket_VIDEO:
		typ = TagVideo
	case streamv1.RtmpPacket_AUDIO:
		typ = TagAudio
	case streamv1.RtmpPacket_METADATA:
		typ = TagScript
	default:
		return Tag{}, fmt.Errorf("packet type %d", p.GetType())
	}
	if len(p.GetData()) == 0 || len(p.GetData()) > MaxTagBytes {
		return Tag{}, fmt.Errorf("packet of %d bytes (1 to %d)", len(p.GetData()), MaxTagBytes)
	}
	if p.GetTimestamp() < 0 || p.GetTimestamp() > 1<<32-1 {
		return Tag{}, fmt.Errorf("timestamp %d out of range", p.GetTimestamp())
	}
	return Tag{Type: typ, Timestamp: uint32(p.GetTimestamp()), Data: p.GetData()}, nil
}

// packetFromTag is tagFromPacket's inverse.
func packetFromTag(t Tag) *streamv1.RtmpPacket {
	typ := streamv1.RtmpPacket_VIDEO
	switch t.Type {
	case TagAudio:
		typ = streamv1.RtmpPacket_AUDIO
	case TagScript:
		typ = streamv1.RtmpPacket_METADATA
	}
	return &streamv1.RtmpPacket{Type: typ, Timestamp: int64(t.Timestamp), Data: t.Data}
}

// RelayServer is the node's StreamRelayService; register it on a gRPC
// server that requires client certificates of the cluster's CA.
func (n *Node) RelayServer() streamv1.StreamRelayServiceServer { return relayServer{n: n} }

type relayServer struct {
	streamv1.UnimplementedStreamRelayServiceServer
	n *Node
}

func checkPath(p string) error {
	room, name, ok := cutPath(p)
	if !ok || room == "" || len(room) > 64 || !validName(name) {
		return status.Error(codes.InvalidArgument, "stream_key must be the stream's path <room_id>/<name>")
	}
	return nil
}

func cutPath(p string) (string, string, bool) {
	for i := 0; i < len(p); i++ {
		if p[i] == '/' {
			return p[:i], p[i+1:], true
		}
	}
	return "", "", false
}

// PullRtmpStream implements StreamRelayService: the headers and GOP cache,
// then live packets, from a stream published on this node.
func (r relayServer) PullRtmpStream(req *streamv1.PullRtmpRequest, srv grpc.ServerStreamingServer[streamv1.RtmpPacket]) error {
	if err := checkPath(req.GetStreamKey()); err != nil {
		return err
	}
	s := r.n.lookup(req.GetStreamKey())
	if s == nil || s.relayed {
		return status.Errorf(codes.NotFound, "stream %s is not published on node %s", req.GetStreamKey(), r.n.cfg.NodeID)
	}
	if e := req.GetEpoch(); e != 0 && e != s.epoch {
		return status.Errorf(codes.FailedPrecondition, "stream %s is at epoch %d on node %s, not %d", s.path, s.epoch, r.n.cfg.NodeID, e)
	}
	// A relay carries many viewers: give it a longer queue than one viewer.
	v, err := s.subscribe(4*r.n.cfg.ViewerQueue, "", 0)
	if err != nil {
		return status.Errorf(codes.NotFound, "stream %s has ended", s.path)
	}
	defer s.unsubscribe(v)
	for {
		select {
		case t := <-v.ch:
			v.took(t, r.n.cfg.MaxLag)
			if err := srv.Send(packetFromTag(t)); err != nil {
				return err
			}
		case <-s.done:
			return nil
		case <-srv.Context().Done():
			return srv.Context().Err()
		case <-r.n.ctx.Done():
			return status.Error(codes.Unavailable, "node closing")
		}
	}
}

// GetStreamStatus implements StreamRelayService.
func (r relayServer) GetStreamStatus(ctx context.Context, req *streamv1.GetStreamStatusRequest) (*streamv1.GetStreamStatusResponse, error) {
	if err := checkPath(req.GetStreamKey()); err != nil {
		return nil, err
	}
	return r.n.Status(ctx, req.GetStreamKey())
}

// StopStream implements StreamRelayService: ends the stream's publisher if
// it is on this node.
func (r relayServer) StopStream(_ context.Context, req *streamv1.StopStreamRequest) (*streamv1.StopStreamResponse, error) {
	if err := checkPath(req.GetStreamKey()); err != nil {
		return nil, err
	}
	s := r.n.lookup(req.GetStreamKey())
	if s == nil || s.relayed {
		return &streamv1.StopStreamResponse{Success: false}, nil
	}
	room, name, _ := cutPath(s.path)
	r.n.audit(AuditEvent{Action: ActionStreamStopped, RoomID: room, Stream: name, Remote: req.GetRequestingNodeId(), Reason: "StopStream"})
	s.stop()
	return &streamv1.StopStreamResponse{Success: true}, nil
}

// Status is GetStreamStatus: local numbers when the stream is on this
// node, else what the lease says.
func (n *Node) Status(ctx context.Context, path string) (*streamv1.GetStreamStatusResponse, error) {
	if s := n.lookup(path); s != nil {
		br, viewers, total := s.stats()
		return &streamv1.GetStreamStatusResponse{IsLive: true, PrimaryNodeId: s.nodeID, Epoch: s.epoch,
			StartTime: s.started.UnixMilli(),
			Stats:     &streamv1.StreamStats{Bitrate: br, ViewerCount: int32(viewers), TotalBytes: total}}, nil
	}
	h, epoch, ok, err := n.cfg.Leases.Lookup(ctx, path)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "lease lookup: %v", err)
	}
	if !ok {
		return &streamv1.GetStreamStatusResponse{}, nil
	}
	return &streamv1.GetStreamStatusResponse{IsLive: true, PrimaryNodeId: h.NodeID, Epoch: epoch, Stats: &streamv1.StreamStats{}}, nil
}
