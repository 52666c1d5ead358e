package roomcluster_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"github.com/croupier/croupier/internal/cluster/clustertest"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	clusterv1 "github.com/croupier/croupier/api/synctv/cluster/v1"
	datav1 "github.com/croupier/croupier/api/synctv/data/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/certs"
	"github.com/croupier/croupier/internal/roomcluster"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
)

func seek(t *testing.T, g *gateway, p player, room string, pos float64) (*clientv1.RoomState, error) {
	t.Helper()
	resp, err := g.client.Seek(ctxT(t), as(p, &clientv1.SeekRequest{RoomId: room, Position: pos}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.GetState(), nil
}

// One room over three gateway nodes behaves as one: a seek on A reaches a
// member on C with the same state and version; chat from every node comes
// out in one order everywhere; a second stream of a user on another node
// replaces the first; online status is cluster-wide; a killed node's
// members reconnect elsewhere and find the state intact.
func TestRoomAcrossNodes(t *testing.T) {
	c := newCluster(t, sharedStore(t), 3)
	a, b, cc := c.gws[0], c.gws[1], c.gws[2]
	owner, alice, bob := c.register(a), c.register(b), c.register(cc)
	room := c.roomWithMovie(a, owner, alice, bob)

	so := openStream(t, a, owner, room, 0)
	sa := openStream(t, b, alice, room, 0)
	sb := openStream(t, cc, bob, room, 0)

	// Seek on A, seen on C (and B) with the state A answered.
	st, err := seek(t, a, owner, room, 42)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*stream{so, sa, sb} {
		got := s.next(stateAt(42)).GetRoomState().GetState()
		if got.GetVersion() != st.GetVersion() || got.GetMovieId() != st.GetMovieId() {
			t.Fatalf("member sees version %d movie %s, want %d %s", got.GetVersion(), got.GetMovieId(), st.GetVersion(), st.GetMovieId())
		}
	}
	// A stale version from C is refused: one version sequence cluster-wide.
	_, err = cc.client.Seek(ctxT(t), as(bob, &clientv1.SeekRequest{RoomId: room, Position: 7, Version: st.GetVersion() - 1}))
	if connect.CodeOf(err) != connect.CodeAborted {
		t.Fatalf("stale seek on C: %v, want ABORTED", err)
	}

	// Chat from all three nodes at once: one order on every node.
	const each = 20
	for i := range each {
		so.send(chatMsg(fmt.Sprint("o", i)))
		sa.send(chatMsg(fmt.Sprint("a", i)))
		sb.send(chatMsg(fmt.Sprint("b", i)))
	}
	var orders [3][]string
	for i, s := range []*stream{so, sa, sb} {
		var lastSeq int64
		for len(orders[i]) < 3*each {
			m := s.next(isChat)
			if m.GetSeq() <= lastSeq {
				t.Fatalf("stream %d: seq %d after %d", i, m.GetSeq(), lastSeq)
			}
			lastSeq = m.GetSeq()
			orders[i] = append(orders[i], fmt.Sprint(m.GetSeq(), m.GetChat().GetContent()))
		}
	}
	if !slices.Equal(orders[0], orders[1]) || !slices.Equal(orders[0], orders[2]) {
		t.Fatalf("chat orders differ:\nA %v\nB %v\nC %v", orders[0], orders[1], orders[2])
	}

	// GetUserOnlineStatus answers for the cluster, from any node.
	_, data := c.dial(a)
	online := func(p player) *datav1.OnlineStatus {
		resp, err := data.GetUserOnlineStatus(ctxT(t), &datav1.GetUserOnlineStatusRequest{UserIds: []string{p.id}})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetStatuses()[p.id]
	}
	if got := online(bob); !got.GetOnline() || got.GetRoomId() != room || got.GetNodeId() != cc.id {
		t.Fatalf("bob's status %v, want online in %s on %s", got, room, cc.id)
	}

	// Bob opens a second stream on B: the one on C is replaced.
	sb2 := openStream(t, b, bob, room, sb.last.Load())
	if e := sb.ended(); e.GetCode() != apierr.CodeStreamReplaced {
		t.Fatalf("bob's first stream ended with %v, want %s", e, apierr.CodeStreamReplaced)
	}
	clustertest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if got := online(bob); got.GetNodeId() != b.id {
			return fmt.Errorf("bob's status %v, want on %s", got, b.id)
		}
		return nil
	})

	// Kill B: alice and bob reconnect to C, where the state is intact.
	before := sa.last.Load()
	b.stop()
	sa.ended()
	sb2.ended()
	sa2 := openStream(t, cc, alice, room, before)
	if _, err := seek(t, cc, alice, room, 99); err != nil {
		t.Fatal(err)
	}
	got := sa2.next(stateAt(99)).GetRoomState().GetState()
	if got.GetVersion() != st.GetVersion()+1 {
		t.Fatalf("after the kill: version %d, want %d", got.GetVersion(), st.GetVersion()+1)
	}
	so.next(stateAt(99))
	// B's members are offline once B is gone (a stopped node removes its
	// membership entry; a crashed one's expires after DeadAfter).
	clustertest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if got := online(bob); got.GetOnline() {
			return fmt.Errorf("bob still online: %v", got)
		}
		return nil
	})
	if got := online(alice); !got.GetOnline() || got.GetNodeId() != cc.id {
		t.Fatalf("alice's status %v, want online on %s", got, cc.id)
	}
}

// A node cut off from NATS catches up from its cursor when it reconnects
// and applies each event once; while cut off it refuses playback changes
// with UNAVAILABLE.
func TestNATSRestart(t *testing.T) {
	c := newCluster(t, sharedStore(t), 3)
	a, cc := c.gws[0], c.gws[2]
	owner, bob := c.register(a), c.register(a)
	room := c.roomWithMovie(a, owner, bob)
	sb := openStream(t, cc, bob, room, 0) // cc's NATS connection is to server 2

	// Stop NATS server 2, the room stream's leader (so that every run
	// rides through an election, not one in three): cc reconnects to 0
	// or 1; the seek made meanwhile waits for the new leader and reaches
	// bob once.
	c.nats.lead(roomcluster.StreamName, 2)
	c.nats.stop(2)
	st, err := seek(t, a, owner, room, 5)
	if err != nil {
		t.Fatal(err)
	}
	c.nats.start(2)
	c.nats.waitCurrent()
	if _, err := seek(t, a, owner, room, 6); err != nil {
		t.Fatal(err)
	}
	so := openStream(t, a, owner, room, 0)
	so.send(chatMsg("marker"))
	// Every event reached bob once, in order, up to the marker.
	versions := map[int64]int{}
	var lastSeq int64
	for {
		m := sb.next(func(*clientv1.ServerMessage) bool { return true })
		if m.GetSeq() != 0 && m.GetSeq() <= lastSeq {
			t.Fatalf("seq %d after %d", m.GetSeq(), lastSeq)
		}
		lastSeq = max(lastSeq, m.GetSeq())
		if rs := m.GetRoomState(); rs != nil {
			versions[rs.GetState().GetVersion()]++
		}
		if m.GetChat().GetContent() == "marker" {
			break
		}
	}
	if versions[st.GetVersion()] != 1 || versions[st.GetVersion()+1] != 1 {
		t.Fatalf("room states by version %v: want versions %d and %d once each", versions, st.GetVersion(), st.GetVersion()+1)
	}

	// Partition cc: its playback changes are refused, not diverged.
	cc.nc.Close()
	_, err = seek(t, cc, bob, room, 8)
	if connect.CodeOf(err) != connect.CodeUnavailable {
		t.Fatalf("seek on a node without NATS: %v, want UNAVAILABLE", err)
	}
	resp, err := a.client.GetRoomInfo(ctxT(t), as(owner, &clientv1.GetRoomInfoRequest{RoomId: room}))
	if err != nil {
		t.Fatal(err)
	}
	if p := resp.Msg.GetState().GetPosition(); p != 6 {
		t.Fatalf("position after the refused seek: %v, want 6", p)
	}
}

// An event sent twice (same event_id) is applied once; a node written
// only against the seed's ClusterService registers, heartbeats, lists the
// nodes, reads the event log and sends chat into a room.
func TestSeedOnlyClientAndDuplicates(t *testing.T) {
	c := newCluster(t, sharedStore(t), 3)
	a, b := c.gws[0], c.gws[1]
	owner, bob := c.register(a), c.register(a)
	room := c.roomWithMovie(a, owner, bob)
	so := openStream(t, a, owner, room, 0)
	sb := openStream(t, b, bob, room, 0)

	cl, _ := c.dial(b)
	ctx := ctxT(t)
	reg, err := cl.RegisterNode(ctx, &clusterv1.RegisterNodeRequest{NodeId: "seed-node", Address: "127.0.0.1:1",
		Capabilities: &clusterv1.NodeCapabilities{CanHandleHttp: true}})
	if err != nil || !reg.GetSuccess() {
		t.Fatalf("register: %v %v", reg, err)
	}
	if _, err := cl.Heartbeat(ctx, &clusterv1.HeartbeatRequest{NodeId: "seed-node", Stats: &clusterv1.NodeStats{ConnectedClients: 3}}); err != nil {
		t.Fatal(err)
	}
	_, err = cl.Heartbeat(ctx, &clusterv1.HeartbeatRequest{NodeId: "nobody"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("heartbeat of an unregistered node: %v, want NOT_FOUND", err)
	}
	_, err = cl.RegisterNode(ctx, &clusterv1.RegisterNodeRequest{NodeId: "bad id!"})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("register with a bad id: %v, want INVALID_ARGUMENT", err)
	}
	nodes, err := cl.GetNodes(ctx, &clusterv1.GetNodesRequest{OnlyAlive: true})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, n := range nodes.GetNodes() {
		ids = append(ids, n.GetNodeId())
	}
	slices.Sort(ids)
	if want := []string{"gw0", "gw1", "gw2", "seed-node"}; !slices.Equal(ids, want) {
		t.Fatalf("nodes %v, want %v", ids, want)
	}

	ev, err := cl.SyncEvents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The headers come once the node follows the log for this call.
	if h, err := ev.Header(); err != nil || len(h.Get(roomcluster.LogSeqHeader)) != 1 {
		t.Fatalf("SyncEvents headers %v, %v: want %s", h, err, roomcluster.LogSeqHeader)
	}
	// The log streams a seek made on A as a PlaybackEvent.
	st30, err := seek(t, a, owner, room, 30)
	if err != nil {
		t.Fatal(err)
	}
	for {
		e, err := ev.Recv()
		if err != nil {
			t.Fatal(err)
		}
		p := e.GetPlayback()
		if p == nil {
			continue
		}
		msg := &clientv1.ServerMessage{}
		if err := protojson.Unmarshal(p.GetData(), msg); err != nil {
			t.Fatal(err)
		}
		if p.GetRoomId() != room || e.GetNodeId() != a.id || e.GetSeq() == 0 || msg.GetRoomState().GetState().GetPosition() != 30 {
			t.Fatalf("playback event %v", e)
		}
		break
	}
	// B applies the events below against its state: once it delivered the
	// seek (bob's stream there sees it), version st30 is current there.
	sb.next(stateAt(30))
	// Chat a seed node sends for its user is posted as that member's chat:
	// once (the same event twice), in the log's order, in the history.
	// Chat for someone who is not a member is refused and the call goes
	// on. A PlaybackEvent (data: a synctv.client.RoomState in JSON, version
	// the one it is based on) is applied like SyncRoomState; a stale one is
	// refused. The events of one call are taken in order: the marker comes
	// after the others were applied or refused.
	chatEv := func(id, user, text string) *clusterv1.ClusterEvent {
		return &clusterv1.ClusterEvent{EventId: id, NodeId: "seed-node", Payload: &clusterv1.ClusterEvent_Chat{
			Chat: &clusterv1.ChatEvent{RoomId: room, MessageId: id, UserId: user, Content: text}}}
	}
	playEv := func(id string, st *clientv1.RoomState) *clusterv1.ClusterEvent {
		data, err := protojson.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		return &clusterv1.ClusterEvent{EventId: id, NodeId: "seed-node", Payload: &clusterv1.ClusterEvent_Playback{
			Playback: &clusterv1.PlaybackEvent{Type: clusterv1.PlaybackEvent_SEEK, RoomId: room, Data: data}}}
	}
	chat := chatEv("seed-evt-1", bob.id, "hello from seed")
	for _, e := range []*clusterv1.ClusterEvent{chat, chat, chatEv("seed-evt-2", "strangerUsr1", "from a stranger"),
		playEv("seed-evt-3", &clientv1.RoomState{Playing: true, Position: 55, Rate: 1, Version: st30.GetVersion()}),
		playEv("seed-evt-4", &clientv1.RoomState{Position: 66, Version: st30.GetVersion()}),
		chatEv("seed-evt-5", bob.id, "after")} {
		if err := ev.Send(e); err != nil {
			t.Fatal(err)
		}
	}
	var chatSeq int64
	for _, s := range []*stream{so, sb} {
		hello, states := 0, 0
		for {
			m := s.next(func(m *clientv1.ServerMessage) bool { return isChat(m) || m.GetRoomState() != nil })
			if m.GetChat().GetContent() == "after" {
				break
			}
			switch {
			case m.GetChat().GetContent() == "hello from seed":
				hello++
				chatSeq = m.GetSeq()
				if u := m.GetChat().GetUser(); u.GetId() != bob.id || u.GetUsername() != bob.name {
					t.Fatalf("seed chat from %v, want bob", u)
				}
			case m.GetChat() != nil:
				t.Fatalf("unexpected chat %v", m)
			case m.GetRoomState().GetState().GetPosition() == 55:
				states++
				if v := m.GetRoomState().GetState().GetVersion(); v != st30.GetVersion()+1 {
					t.Fatalf("seed playback applied as version %d, want %d", v, st30.GetVersion()+1)
				}
			case m.GetRoomState().GetState().GetPosition() == 66:
				t.Fatalf("a stale playback event was applied: %v", m)
			}
		}
		if hello != 1 || states != 1 {
			t.Fatalf("seed chat seen %d times, seed playback %d times; want 1 and 1", hello, states)
		}
	}
	clustertest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error { // the chat log writes in the background
		h, err := a.client.GetChatHistory(ctx, as(owner, &clientv1.GetChatHistoryRequest{RoomId: room}))
		if err != nil {
			return err
		}
		n := 0
		for _, m := range h.Msg.GetMessages() {
			if m.GetChat().GetContent() == "hello from seed" && m.GetSeq() == chatSeq && m.GetChat().GetUser().GetId() == bob.id {
				n++
			}
		}
		if n != 1 {
			return fmt.Errorf("seed chat in the history %d times, want once at seq %d", n, chatSeq)
		}
		return nil
	})
	// Playback data that decodes as neither format is dropped and the call
	// goes on. Data in the format the cluster writes (a ServerMessage with
	// a room_state: the state after a change) applies while the room is at
	// the version before it: relaying the event of the change to 55 (the
	// room is past it) is refused as stale; the next state applies.
	ev2, err := cl.SyncEvents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bad := playEv("seed-evt-6", &clientv1.RoomState{})
	bad.GetPlayback().Data = []byte(`{"roomState":{}}`)
	relay := func(id string, st *clientv1.RoomState) *clusterv1.ClusterEvent {
		e := playEv(id, &clientv1.RoomState{})
		data, err := protojson.Marshal(&clientv1.ServerMessage{MessageId: id, Payload: &clientv1.ServerMessage_RoomState{
			RoomState: &clientv1.RoomStateUpdate{State: st}}})
		if err != nil {
			t.Fatal(err)
		}
		e.GetPlayback().Data = data
		return e
	}
	v55 := st30.GetVersion() + 1
	for _, e := range []*clusterv1.ClusterEvent{bad,
		relay("seed-evt-7", &clientv1.RoomState{Playing: true, Position: 55, Rate: 1, Version: v55}),
		relay("seed-evt-8", &clientv1.RoomState{Playing: true, Position: 88, Rate: 1, Version: v55 + 1}),
		chatEv("seed-evt-9", bob.id, "after relays")} {
		if err := ev2.Send(e); err != nil {
			t.Fatal(err)
		}
	}
	for {
		m := sb.next(func(m *clientv1.ServerMessage) bool { return isChat(m) || m.GetRoomState() != nil })
		if m.GetChat().GetContent() == "after relays" {
			break
		}
		if m.GetRoomState() != nil && m.GetRoomState().GetState().GetPosition() != 88 {
			t.Fatalf("relayed playback: state %v, want only position 88", m.GetRoomState().GetState())
		}
	}
	// The node's playback changes are audited as the caller's certificate
	// (the node_id it claims in the payload), made and refused.
	cert, err := tls.LoadX509KeyPair(c.certs.ClientCert, c.certs.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	id, err := certs.IdentityFromCert(leaf)
	if err != nil {
		t.Fatal(err)
	}
	var made, refused int
	for _, e := range b.audit.all() {
		if e.Actor != id.String() || e.Action != roomcluster.ActionNodePlayback || e.Payload.(map[string]any)["node_id"] != "seed-node" {
			t.Fatalf("audit entry %s %s %v, want %s %s with node_id seed-node", e.Actor, e.Action, e.Payload, id, roomcluster.ActionNodePlayback)
		}
		switch status.Code(e.Err) {
		case codes.OK:
			made++
		case codes.Aborted:
			refused++
		}
	}
	if made != 2 || refused != 2 {
		t.Fatalf("audited %d made and %d refused playback changes, want 2 and 2", made, refused)
	}
	// An event without an id ends the call with INVALID_ARGUMENT.
	if err := ev.Send(&clusterv1.ClusterEvent{Payload: chat.Payload}); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := ev.Recv(); err != nil {
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("event without id: %v, want INVALID_ARGUMENT", err)
			}
			break
		}
	}

	// DataSyncService on another node: SyncRoomState moves everyone.
	_, data := c.dial(c.gws[2])
	if _, err := data.SyncRoomState(ctx, &datav1.SyncRoomStateRequest{RoomId: room, SourceNodeId: "seed-node",
		State: &datav1.RoomState{Status: "playing", CurrentTime: 77, Rate: 1}}); err != nil {
		t.Fatal(err)
	}
	sb.next(stateAt(77))
	_, err = data.SyncRoomState(ctx, &datav1.SyncRoomStateRequest{RoomId: room, State: &datav1.RoomState{Status: "stopped"}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad status: %v, want INVALID_ARGUMENT", err)
	}
	// Limits are checked before any work.
	_, err = data.GetUserOnlineStatus(ctx, &datav1.GetUserOnlineStatusRequest{UserIds: make([]string, 1001)})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("1,001 user ids: %v, want INVALID_ARGUMENT", err)
	}
	_, err = data.GetUserOnlineStatus(ctx, &datav1.GetUserOnlineStatusRequest{UserIds: []string{"a.b"}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad user id: %v, want INVALID_ARGUMENT", err)
	}
	_, err = data.BatchGetRooms(ctx, &datav1.BatchGetRoomsRequest{RoomIds: make([]string, 101)})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("101 room ids: %v, want INVALID_ARGUMENT", err)
	}
	rooms, err := data.BatchGetRooms(ctx, &datav1.BatchGetRoomsRequest{RoomIds: []string{room, "nosuchroom12"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rooms.GetRooms()) != 1 || rooms.GetRooms()[0].GetId() != room || rooms.GetRooms()[0].GetMemberCount() != 2 ||
		rooms.GetRooms()[0].GetIsLive() {
		t.Fatalf("BatchGetRooms: %v", rooms)
	}
	// is_live comes from the node's live streams (internal/live in a gateway).
	c.gws[2].svc.OnLiveStreams(func(id string) []*clientv1.LiveEvent {
		if id != room {
			return nil
		}
		return []*clientv1.LiveEvent{{Type: clientv1.LiveEvent_STARTED, StreamKey: id + "/main"}}
	})
	rooms, err = data.BatchGetRooms(ctx, &datav1.BatchGetRoomsRequest{RoomIds: []string{room}})
	if err != nil || len(rooms.GetRooms()) != 1 || !rooms.GetRooms()[0].GetIsLive() {
		t.Fatalf("BatchGetRooms with a live stream: %v, %v", rooms, err)
	}
	_, err = data.BatchGetRooms(ctx, &datav1.BatchGetRoomsRequest{RoomIds: []string{room, strings.Repeat("x", 1<<16)}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("a 64 KiB room id: %v, want INVALID_ARGUMENT", err)
	}

	// A node whose services are served before its rooms system is
	// attached (Start) answers UNAVAILABLE instead of failing.
	idle, err := roomcluster.New(ctx, roomcluster.Config{Conn: c.nats.connect("gw-idle", 0), NodeID: "gw-idle", Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(idle.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	idle.Register(gs)
	go func() { _ = gs.Serve(ln) }() // ends with gs.Stop below
	t.Cleanup(gs.Stop)
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	idleData := datav1.NewDataSyncServiceClient(cc)
	if _, err := idleData.BatchGetRooms(ctx, &datav1.BatchGetRoomsRequest{RoomIds: []string{room}}); status.Code(err) != codes.Unavailable {
		t.Fatalf("BatchGetRooms before Start: %v, want UNAVAILABLE", err)
	}
	if _, err := idleData.SyncRoomState(ctx, &datav1.SyncRoomStateRequest{RoomId: room,
		State: &datav1.RoomState{Status: "paused"}}); status.Code(err) != codes.Unavailable {
		t.Fatalf("SyncRoomState before Start: %v, want UNAVAILABLE", err)
	}
}

// Live STARTED/STOPPED from a node's ingest reach members on every node,
// also when no member of the room is on the ingest node; so does a change
// made through a node where the room is not live (a ban). The log carries
// them as the seed's live and member events.
func TestLiveEventsAcrossNodes(t *testing.T) {
	c := newCluster(t, sharedStore(t), 2)
	a, b := c.gws[0], c.gws[1]
	owner, bob, eve := c.register(a), c.register(a), c.register(a)
	room := c.roomWithMovie(a, owner, bob, eve)
	sb := openStream(t, b, bob, room, 0)
	se := openStream(t, b, eve, room, 0)

	cl, _ := c.dial(a)
	ev, err := cl.SyncEvents(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ev.Header(); err != nil {
		t.Fatal(err)
	}
	// Node A has no stream in the room: the ingest's events still go out.
	ctx := ctxT(t)
	a.svc.LiveEvent(ctx, room, &clientv1.LiveEvent{Type: clientv1.LiveEvent_STARTED, StreamKey: "main"})
	a.svc.LiveEvent(ctx, room, &clientv1.LiveEvent{Type: clientv1.LiveEvent_STOPPED, StreamKey: "main"})
	isLive := func(m *clientv1.ServerMessage) bool { return m.GetLive() != nil }
	for _, s := range []*stream{sb, se} {
		started, stopped := s.next(isLive), s.next(isLive)
		if started.GetLive().GetType() != clientv1.LiveEvent_STARTED || stopped.GetLive().GetType() != clientv1.LiveEvent_STOPPED ||
			started.GetLive().GetStreamKey() != "main" || stopped.GetSeq() <= started.GetSeq() {
			t.Fatalf("live events %v then %v, want STARTED then STOPPED of main", started, stopped)
		}
	}
	var kinds []string
	for len(kinds) < 2 {
		e, err := ev.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if l := e.GetLive(); l != nil {
			kinds = append(kinds, l.GetType().String())
		}
	}
	if !slices.Equal(kinds, []string{"STARTED", "STOPPED"}) {
		t.Fatalf("SyncEvents live events %v", kinds)
	}

	// A ban made through A reaches eve's stream on B.
	if _, err := a.client.BanMember(ctx, as(owner, &clientv1.BanMemberRequest{RoomId: room, UserId: eve.id})); err != nil {
		t.Fatal(err)
	}
	if e := se.ended(); e.GetCode() != apierr.CodeMemberBanned {
		t.Fatalf("eve's stream ended with %v, want %s", e, apierr.CodeMemberBanned)
	}
}

// A permission change made through node A applies to the member's
// stream on node B (in log order, as the database holds it). online_count
// counts the streams on every node (room info and BatchGetRooms, from
// either node). Deleting a room through A ends its members' streams on B
// too (ROOM_DELETED after a RoomUpdate with deleted set), and B refuses
// new streams of it.
func TestRoomDeletedAcrossNodes(t *testing.T) {
	c := newCluster(t, sharedStore(t), 2)
	a, b := c.gws[0], c.gws[1]
	owner, bob := c.register(a), c.register(a)
	room := c.roomWithMovie(a, owner, bob)
	so := openStream(t, a, owner, room, 0)
	sb := openStream(t, b, bob, room, 0)

	sb.send(chatMsg("may chat"))
	so.next(func(m *clientv1.ServerMessage) bool { return m.GetChat().GetContent() == "may chat" })
	if _, err := a.client.SetMemberPermissions(ctxT(t), as(owner, &clientv1.SetMemberPermissionsRequest{RoomId: room, UserId: bob.id,
		Permissions: uint64(clientv1.Permission_PERMISSION_CONTROL_PLAYBACK)})); err != nil {
		t.Fatal(err)
	}
	sb.next(func(m *clientv1.ServerMessage) bool {
		return m.GetMember().GetKind() == clientv1.MemberUpdate_KIND_PERMISSIONS_CHANGED && m.GetMember().GetMember().GetUser().GetId() == bob.id
	})
	sb.send(chatMsg("may not chat"))
	if e := sb.next(func(m *clientv1.ServerMessage) bool { return m.GetError() != nil || m.GetChat() != nil }); e.GetError().GetCode() != apierr.CodePermissionDenied {
		t.Fatalf("chat on B after CHAT was revoked on A: %v, want %s", e, apierr.CodePermissionDenied)
	}

	// online_count: one stream on A, one on B.
	_, dataA := c.dial(a)
	_, dataB := c.dial(b)
	onlineIs := func(want int32) {
		t.Helper()
		clustertest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
			for i, g := range []*gateway{a, b} {
				info, err := g.client.GetRoomInfo(ctxT(t), as(owner, &clientv1.GetRoomInfoRequest{RoomId: room}))
				if err != nil {
					return err
				}
				if got := info.Msg.GetRoom().GetOnlineCount(); got != want {
					return fmt.Errorf("room info on %s: online_count %d, want %d", g.id, got, want)
				}
				data := []datav1.DataSyncServiceClient{dataA, dataB}[i]
				rs, err := data.BatchGetRooms(ctxT(t), &datav1.BatchGetRoomsRequest{RoomIds: []string{room}})
				if err != nil {
					return err
				}
				r := &clientv1.Room{}
				if len(rs.GetRooms()) != 1 || protojson.Unmarshal(rs.GetRooms()[0].GetData(), r) != nil {
					return fmt.Errorf("BatchGetRooms on %s: %v", g.id, rs)
				}
				if r.GetOnlineCount() != want {
					return fmt.Errorf("BatchGetRooms on %s: online_count %d, want %d", g.id, r.GetOnlineCount(), want)
				}
			}
			return nil
		})
	}
	onlineIs(2)
	sb.close()
	onlineIs(1)
	sb = openStream(t, b, bob, room, 0)
	onlineIs(2)

	if _, err := a.client.DeleteRoom(ctxT(t), as(owner, &clientv1.DeleteRoomRequest{RoomId: room})); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*stream{"A": so, "B": sb} {
		del := s.next(func(m *clientv1.ServerMessage) bool { return m.GetRoom().GetDeleted() })
		if del.GetRoom().GetRoom().GetId() != room {
			t.Fatalf("node %s: deleted update %v, want room %s", name, del, room)
		}
		if e := s.ended(); e.GetCode() != apierr.CodeRoomDeleted {
			t.Fatalf("node %s: stream ended with %v, want %s", name, e, apierr.CodeRoomDeleted)
		}
	}
	bs := b.client.MessageStream(ctxT(t))
	bs.RequestHeader().Set("Authorization", "Bearer "+bob.token)
	if err := bs.Send(&clientv1.ClientMessage{Payload: &clientv1.ClientMessage_Hello{Hello: &clientv1.StreamHello{RoomId: room}}}); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := bs.Receive()
		if err != nil {
			if code := connect.CodeOf(err); code != connect.CodeNotFound {
				t.Fatalf("a new stream of the deleted room on B: %v, want NOT_FOUND", err)
			}
			break
		}
		if m.GetError() != nil {
			if m.GetError().GetCode() != apierr.CodeRoomDeleted && m.GetError().GetCode() != apierr.CodeRoomNotFound {
				t.Fatalf("a new stream of the deleted room on B: %v", m.GetError())
			}
			break
		}
	}
	_ = bs.CloseRequest()
}

// A playlist change made through a node where nobody streams the room
// reaches the member streaming on another node, and so does a playlist far
// larger than one log event may be (40 movies with 2,000-byte URLs: ~80
// KiB, where the log takes 64 KiB): each node reads the playlist from the
// store when the log says it changed. A reorder too.
func TestPlaylistAcrossNodes(t *testing.T) {
	c := newCluster(t, sharedStore(t), 2)
	a, b := c.gws[0], c.gws[1]
	owner, bob := c.register(a), c.register(a)
	room := c.roomWithMovie(a, owner, bob)
	sb := openStream(t, b, bob, room, 0)
	ctx := ctxT(t)
	isPlaylist := func(n int) func(m *clientv1.ServerMessage) bool {
		return func(m *clientv1.ServerMessage) bool { return len(m.GetPlaylist().GetMovies()) == n }
	}
	if _, err := a.client.AddMovie(ctx, as(owner, &clientv1.AddMovieRequest{RoomId: room, Url: "https://example.com/b.mp4"})); err != nil {
		t.Fatal(err)
	}
	sb.next(isPlaylist(2))
	long := "https://example.com/" + strings.Repeat("x", 1980)
	for i := range 40 {
		if _, err := a.client.AddMovie(ctx, as(owner, &clientv1.AddMovieRequest{RoomId: room, Url: fmt.Sprintf("%s%02d.mp4", long, i)})); err != nil {
			t.Fatal(err)
		}
	}
	m := sb.next(isPlaylist(42))
	last := m.GetPlaylist().GetMovies()[41]
	if last.GetUrl() != long+"39.mp4" {
		t.Fatalf("the last movie of the update is %.40q…, want the 40th added", last.GetUrl())
	}
	// A reorder is announced the same way.
	if _, err := a.client.ReorderMovies(ctx, as(owner, &clientv1.ReorderMoviesRequest{RoomId: room, MovieId: last.GetId(), ToIndex: 0})); err != nil {
		t.Fatal(err)
	}
	sb.next(func(m *clientv1.ServerMessage) bool {
		return len(m.GetPlaylist().GetMovies()) == 42 && m.GetPlaylist().GetMovies()[0].GetId() == last.GetId()
	})
}
