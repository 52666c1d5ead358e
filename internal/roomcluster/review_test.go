package roomcluster_test

import (
	"context"
	"sync"
	"testing"
	"time"

	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	clusterv1 "github.com/croupier/croupier/api/synctv/cluster/v1"
	"github.com/croupier/croupier/internal/roomcluster"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// A read whose caller has no deadline is bounded by PublishTimeout: with
// the bus gone (the connection reconnects for ever) Head returns an error
// instead of repeating its request for ever.
func TestReadsBoundedWithoutDeadline(t *testing.T) {
	s, err := server.NewServer(&server.Options{ServerName: "solo", Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	nc, err := nats.Connect(s.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	node, err := roomcluster.New(ctxT(t), roomcluster.Config{Conn: nc, NodeID: "gw-bounded", PublishTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := node.Head(context.Background(), "room1"); err != nil {
		t.Fatalf("head with the bus up: %v", err)
	}
	s.Shutdown()
	s.WaitForShutdown()
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := node.Head(context.Background(), "room1")
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("head without a bus: no error")
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Fatalf("head without a bus took %v, want about PublishTimeout (1 s)", took)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("head without a deadline did not return within 20 s (PublishTimeout 1 s)")
	}
}

// Heartbeat is a compare-and-set on the membership entry: a RegisterNode
// (a new address) between its read and its write is kept, not undone.
func TestHeartbeatKeepsConcurrentRegister(t *testing.T) {
	c := newCluster(t, sharedStore(t), 1)
	g := c.gws[0]
	cl, _ := c.dial(g)
	ctx := ctxT(t)
	if _, err := cl.RegisterNode(ctx, &clusterv1.RegisterNodeRequest{NodeId: "seed-b", Address: "127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	roomcluster.SetBeforeHeartbeatWrite(g.node, func() {
		once.Do(func() {
			if _, err := cl.RegisterNode(ctx, &clusterv1.RegisterNodeRequest{NodeId: "seed-b", Address: "127.0.0.1:2"}); err != nil {
				t.Error(err)
			}
		})
	})
	if _, err := cl.Heartbeat(ctx, &clusterv1.HeartbeatRequest{NodeId: "seed-b", Stats: &clusterv1.NodeStats{ConnectedClients: 7}}); err != nil {
		t.Fatal(err)
	}
	nodes, err := cl.GetNodes(ctx, &clusterv1.GetNodesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes.GetNodes() {
		if n.GetNodeId() != "seed-b" {
			continue
		}
		if n.GetAddress() != "127.0.0.1:2" || n.GetStats().GetConnectedClients() != 7 {
			t.Fatalf("seed-b after a heartbeat racing a re-register: address %s, clients %d; want 127.0.0.1:2 and 7",
				n.GetAddress(), n.GetStats().GetConnectedClients())
		}
		return
	}
	t.Fatalf("seed-b not listed: %v", nodes)
}

// A permission change is applied as the database holds the membership
// when it is delivered: two changes on two nodes may commit in one order
// and reach the log in the other. Here the log's last event carries an
// older membership (CHAT revoked) than the database holds (CHAT granted):
// the member's stream on B keeps CHAT and is told the database's value.
func TestPermissionChangeAppliedAsStored(t *testing.T) {
	c := newCluster(t, sharedStore(t), 2)
	a, b := c.gws[0], c.gws[1]
	owner, bob := c.register(a), c.register(a)
	room := c.roomWithMovie(a, owner, bob)
	so := openStream(t, a, owner, room, 0)
	sb := openStream(t, b, bob, room, 0)
	ctx := ctxT(t)
	m, err := c.st.Rooms().Member(ctx, room, bob.id)
	if err != nil {
		t.Fatal(err)
	}
	chat := uint64(clientv1.Permission_PERMISSION_CHAT)
	if m.Permissions&chat == 0 {
		t.Fatalf("bob starts without CHAT: %#x", m.Permissions)
	}
	stale := &clientv1.ServerMessage{MessageId: "stale-permissions-1", Payload: &clientv1.ServerMessage_Member{Member: &clientv1.MemberUpdate{
		Kind: clientv1.MemberUpdate_KIND_PERMISSIONS_CHANGED, Member: &clientv1.Member{User: &clientv1.User{Id: bob.id},
			Role: clientv1.MemberRole(m.Role), Permissions: m.Permissions &^ chat, Status: clientv1.MemberStatus(m.Status)}}}}
	if _, err := a.node.Publish(ctx, room, stale); err != nil {
		t.Fatal(err)
	}
	u := sb.next(func(m *clientv1.ServerMessage) bool {
		return m.GetMember().GetKind() == clientv1.MemberUpdate_KIND_PERMISSIONS_CHANGED
	})
	if u.GetMember().GetMember().GetPermissions()&chat == 0 {
		t.Fatalf("permission change told as %#x, want the stored membership (with CHAT)", u.GetMember().GetMember().GetPermissions())
	}
	sb.send(chatMsg("still may chat"))
	if e := sb.next(func(m *clientv1.ServerMessage) bool { return m.GetError() != nil || m.GetChat() != nil }); e.GetChat() == nil {
		t.Fatalf("chat on B after a stale permission event: %v, want the chat (the database grants CHAT)", e)
	}
	so.next(func(m *clientv1.ServerMessage) bool { return m.GetChat().GetContent() == "still may chat" })
}
