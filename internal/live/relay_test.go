package live_test

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
)

// TestRelayToSecondNode: a member on node B plays a stream published on
// node A; B pulls it from A over mTLS StreamRelayService, once for all its
// viewers.
func TestRelayToSecondNode(t *testing.T) {
	w := newWorld(t)
	a := w.newNode("a", 4)
	b := w.newNode("b", 4)
	publish(t, a.RTMPAddr(), w.room, w.key, 30)
	path := w.room + "/main"
	a.waitLive(t, path)

	got := ffprobe(t, b.playURL(w.room, w.member)).codecs()
	if got["video"] != "h264" || got["audio"] != "aac" {
		t.Fatalf("ffprobe on node b saw %v; want video h264 and audio aac", got)
	}
	// ffprobe's viewer was b's last: b ends its relay. Wait until it is
	// gone on both nodes, so the viewers below start a new one (a viewer
	// arriving while the old one ends would join it as it dies).
	waitFor(t, 20*time.Second, "b's relay to end", func() bool {
		sa, _ := a.Status(context.Background(), path)
		return !b.HasStream(path) && sa.GetStats().GetViewerCount() == 0
	})
	// Two viewers on B at once: A counts one relay viewer.
	for range 2 {
		resp, err := http.Get(b.playURL(w.room, w.host))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("viewer on b: status %d", resp.StatusCode)
		}
		go func() { _, _ = io.Copy(io.Discard, resp.Body) }()
	}
	waitFor(t, 20*time.Second, "two viewers on b and b's relay on a", func() bool {
		sb, _ := b.Status(context.Background(), path)
		sa, _ := a.Status(context.Background(), path)
		return sb.GetStats().GetViewerCount() == 2 && sa.GetStats().GetViewerCount() >= 1
	})
	if st, _ := a.Status(context.Background(), path); st.GetStats().GetViewerCount() != 1 {
		t.Errorf("node a has %d viewers; want 1 (the relay)", st.GetStats().GetViewerCount())
	}
}

// TestPublisherNodeDies: while A's lease lives a publish on B is refused;
// when A dies (it neither releases its lease nor says anything), B's relay
// and viewers end, the lease expires and B's lease watcher tells the room
// STOPPED; a republish on B takes the lease with a higher epoch.
func TestPublisherNodeDies(t *testing.T) {
	w := newWorld(t)
	a := w.newNode("a", 4)
	b := w.newNode("b", 4)
	events, err := w.svc.OpenStream(context.Background(), w.hostCaller, &clientv1.StreamHello{RoomId: w.room})
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()
	publish(t, a.RTMPAddr(), w.room, w.key, 60)
	path := w.room + "/main"
	first := a.waitLive(t, path)
	waitLiveEvent(t, events, clientv1.LiveEvent_STARTED, path)

	if err := publish(t, b.RTMPAddr(), w.room, w.key, 5).Wait(); err == nil {
		t.Fatal("a second publisher on node b succeeded while a's lease lives")
	}
	ffprobe(t, b.playURL(w.room, w.member)) // b relays now

	a.kill()
	ev := waitLiveEvent(t, events, clientv1.LiveEvent_STOPPED, path)
	if ev.GetEpoch() != first.GetEpoch() {
		t.Fatalf("STOPPED epoch %d, want a's %d", ev.GetEpoch(), first.GetEpoch())
	}
	if _, _, ok, _ := w.leases.Lookup(context.Background(), path); ok {
		t.Fatal("STOPPED came before a's lease expired")
	}
	waitFor(t, 10*time.Second, "b's relay to end", func() bool {
		st, _ := b.Status(context.Background(), path)
		return !st.GetIsLive()
	})
	publish(t, b.RTMPAddr(), w.room, w.key, 30)
	second := b.waitLive(t, path)
	if second.GetPrimaryNodeId() != "b" || second.GetEpoch() <= first.GetEpoch() {
		t.Fatalf("republish: node %s epoch %d; want node b and an epoch above %d", second.GetPrimaryNodeId(), second.GetEpoch(), first.GetEpoch())
	}
	ev = waitLiveEvent(t, events, clientv1.LiveEvent_STARTED, path)
	if ev.GetEpoch() != second.GetEpoch() {
		t.Fatalf("STARTED epoch %d, want %d", ev.GetEpoch(), second.GetEpoch())
	}
}

// TestPartitionedPublisher: node A loses NATS but keeps its publisher and
// its relay to B. After a TTL without renewals A's epoch steps down: its
// stream stops, B's relay of that epoch ends, the room hears STOPPED, and
// a publish on B takes the stream with a higher epoch.
func TestPartitionedPublisher(t *testing.T) {
	w := newWorld(t)
	a := w.newNode("a", 4)
	b := w.newNode("b", 4)
	events, err := w.svc.OpenStream(context.Background(), w.hostCaller, &clientv1.StreamHello{RoomId: w.room})
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()
	publish(t, a.RTMPAddr(), w.room, w.key, 60)
	path := w.room + "/main"
	first := a.waitLive(t, path)

	// A viewer on B keeps B's relay from A open.
	resp, err := http.Get(b.playURL(w.room, w.member))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("viewer on b: status %d", resp.StatusCode)
	}
	viewerDone := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, resp.Body)
		viewerDone <- err
	}()
	b.waitLive(t, path)

	a.nc.Close() // A is cut off from NATS, nothing else
	ev := waitLiveEvent(t, events, clientv1.LiveEvent_STOPPED, path)
	if ev.GetEpoch() != first.GetEpoch() {
		t.Fatalf("STOPPED epoch %d, want %d", ev.GetEpoch(), first.GetEpoch())
	}
	select {
	case <-viewerDone:
	case <-time.After(10 * time.Second):
		t.Fatal("b's viewer of the old epoch still plays")
	}
	waitFor(t, 10*time.Second, "a's stream to step down", func() bool {
		st, _ := a.Status(context.Background(), path)
		return !st.GetIsLive()
	})
	waitFor(t, 10*time.Second, "b's relay to end", func() bool {
		st, _ := b.Status(context.Background(), path)
		return !st.GetIsLive()
	})
	publish(t, b.RTMPAddr(), w.room, w.key, 30)
	if second := b.waitLive(t, path); second.GetPrimaryNodeId() != "b" || second.GetEpoch() <= first.GetEpoch() {
		t.Fatalf("republish: node %s epoch %d; want node b above epoch %d", second.GetPrimaryNodeId(), second.GetEpoch(), first.GetEpoch())
	}
}
