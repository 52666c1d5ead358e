package roomcluster_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/croupier/croupier/internal/cluster/clustertest"
	"log/slog"
	"strings"
	"testing"
	"time"

	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"github.com/croupier/croupier/internal/roomcluster"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// noRooms is a rooms system with no rooms: the presence tests need none.
type noRooms struct{}

func (noRooms) Deliver(string, int64, bool, bool, *clientv1.ServerMessage) {}
func (noRooms) SetPlayback(context.Context, string, string, bool, float64, float64, int64) (*clientv1.RoomState, error) {
	return nil, errors.New("no rooms")
}
func (noRooms) RemoteChat(context.Context, string, string, string, string) error {
	return errors.New("no rooms")
}
func (noRooms) RoomsByID(context.Context, []string) ([]*clientv1.Room, error) { return nil, nil }
func (noRooms) IsLive(string) bool                                            { return false }

// soloNATS is one JetStream server on a fixed port (so that it can be
// started again on the same port and store).
type soloNATS struct {
	t    *testing.T
	opts server.Options
	s    *server.Server
}

func startSoloNATS(t *testing.T) *soloNATS {
	n := &soloNATS{t: t, opts: server.Options{ServerName: "solo", Host: "127.0.0.1", Port: freePort(t), NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: t.TempDir()}}
	n.start()
	t.Cleanup(n.stop)
	return n
}

func (n *soloNATS) start() {
	s, err := server.NewServer(&n.opts)
	if err != nil {
		n.t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		n.t.Fatal("nats server not ready")
	}
	n.s = s
}

func (n *soloNATS) stop() { n.s.Shutdown(); n.s.WaitForShutdown() }

func (n *soloNATS) connect() *nats.Conn {
	nc, err := nats.Connect(n.s.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(nc.Close)
	return nc
}

// logWatch is a slog handler that signals each record whose message
// starts with prefix.
type logWatch struct {
	prefix string
	seen   chan struct{}
}

func (w logWatch) Enabled(context.Context, slog.Level) bool { return true }
func (w logWatch) Handle(_ context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, w.prefix) {
		select {
		case w.seen <- struct{}{}:
		default:
		}
	}
	return nil
}
func (w logWatch) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w logWatch) WithGroup(string) slog.Handler      { return w }

const presenceDeadAfter = 1500 * time.Millisecond

func presenceNode(t *testing.T, nc *nats.Conn, id string, log *slog.Logger) *roomcluster.Node {
	t.Helper()
	n, err := roomcluster.New(ctxT(t), roomcluster.Config{Conn: nc, NodeID: id, Heartbeat: 100 * time.Millisecond,
		DeadAfter: presenceDeadAfter, PublishTimeout: time.Second, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(ctxT(t), noRooms{}, &recorder{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
}

// Entries a previous run of a node left are deleted when it starts; a
// crashed node's stop counting (and are dropped from the watched counts)
// DeadAfter after they were written; a live node's are written again at
// each heartbeat, so they keep counting.
func TestPresenceStaleEntries(t *testing.T) {
	ns := startSoloNATS(t)
	nc := ns.connect()
	ctx := ctxT(t)
	// The bucket as a previous run of gw-a and a crashed node left it.
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: roomcluster.PresenceBucket, TTL: presenceDeadAfter})
	if err != nil {
		t.Fatal(err)
	}
	for key, v := range map[string]string{"r.room1.gw-a": "7", "r.room2.gw-a": "1", "r.room1.gw-crashed": "5"} {
		if _, err := kv.PutString(ctx, key, v); err != nil {
			t.Fatal(err)
		}
	}
	a := presenceNode(t, nc, "gw-a", nil)
	clustertest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		for _, key := range []string{"r.room1.gw-a", "r.room2.gw-a"} {
			if _, err := kv.Get(ctx, key); !errors.Is(err, jetstream.ErrKeyNotFound) {
				return fmt.Errorf("%s of a previous run: %v, want deleted", key, err)
			}
		}
		return nil
	})
	b := presenceNode(t, nc, "gw-b", nil)
	b.Online("room1", 3)
	var first uint64
	clustertest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		e, err := kv.Get(ctx, "r.room1.gw-b")
		if err != nil {
			return err
		}
		first = e.Revision()
		return nil
	})
	// The crashed node's 5 stops counting DeadAfter after it was written,
	// and is dropped from the watched counts (only room1 is left: b's).
	clustertest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if got := a.OnlineElsewhere("room1"); got != 3 {
			return fmt.Errorf("online elsewhere in room1: %d, want 3 (gw-b's)", got)
		}
		if got := roomcluster.PresenceRooms(a); got != 1 {
			return fmt.Errorf("watched counts for %d rooms, want 1", got)
		}
		return nil
	})
	// b's entry is written again at its heartbeats, so it outlives the TTL.
	clustertest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		e, err := kv.Get(ctx, "r.room1.gw-b")
		if err != nil {
			return err
		}
		if e.Revision() == first {
			return errors.New("gw-b's count not written again yet")
		}
		if time.Since(e.Created()) > presenceDeadAfter {
			return errors.New("gw-b's count is older than DeadAfter")
		}
		return nil
	})
	if got := a.OnlineElsewhere("room1"); got != 3 {
		t.Fatalf("online elsewhere in room1 after gw-b's rewrite: %d, want 3", got)
	}
}

// A count whose write failed (NATS was down) is written once NATS is
// back, without another change in the room.
func TestPresenceWriteRetried(t *testing.T) {
	ns := startSoloNATS(t)
	nc := ns.connect()
	w := logWatch{prefix: "room presence not recorded", seen: make(chan struct{}, 1)}
	a := presenceNode(t, nc, "gw-a", slog.New(w))
	ns.stop()
	a.Online("room1", 4)
	select {
	case <-w.seen: // the write failed
	case <-time.After(30 * time.Second):
		t.Fatal("the presence write did not fail within 30 s with NATS down")
	}
	ns.start()
	ctx := ctxT(t)
	js, err := jetstream.New(ns.connect())
	if err != nil {
		t.Fatal(err)
	}
	clustertest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		kv, err := js.KeyValue(ctx, roomcluster.PresenceBucket)
		if err != nil {
			return err
		}
		e, err := kv.Get(ctx, "r.room1.gw-a")
		if err != nil {
			return err
		}
		if string(e.Value()) != "4" {
			return fmt.Errorf("count %s, want 4", e.Value())
		}
		return nil
	})
}
