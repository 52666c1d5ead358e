package live_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"github.com/croupier/croupier/internal/live"
)

// TestRelayToSecondNode: a member on node B plays a stream published on
// node A; B pulls it from A over mTLS StreamRelayService, once for all its
// viewers.
func TestRelayToSecondNode(t *testing.T) {
	w := newWorld(t)
	a := w.newNode("a", w.leases, 4)
	b := w.newNode("b", w.leases, 4)
	publish(t, a.RTMPAddr(), w.room, w.key, 30)
	path := w.room + "/main"
	a.waitLive(t, path)

	got := ffprobe(t, b.playURL(w.room, w.member)).codecs()
	if got["video"] != "h264" || got["audio"] != "aac" {
		t.Fatalf("ffprobe on node b saw %v; want video h264 and audio aac", got)
	}
	// Two viewers on B at once: A counts one relay viewer.
	done := make(chan struct{})
	for range 2 {
		go func() {
			defer func() { done <- struct{}{} }()
			ffprobe(t, b.playURL(w.room, w.host))
		}()
	}
	waitFor(t, 20*time.Second, "two viewers on b", func() bool {
		st, _ := b.Status(context.Background(), path)
		return st.GetStats().GetViewerCount() == 2
	})
	if st, _ := a.Status(context.Background(), path); st.GetStats().GetViewerCount() != 1 {
		t.Errorf("node a has %d viewers; want 1 (the relay)", st.GetStats().GetViewerCount())
	}
	<-done
	<-done
}

// dyingLeases is the cluster's leases as seen by a node that can die: once
// killed it neither renews nor releases, as a crashed node would not.
type dyingLeases struct {
	live.Leases
	dead atomic.Bool
}

func (d *dyingLeases) Renew(ctx context.Context, path string, epoch int64) error {
	if d.dead.Load() {
		return nil
	}
	return d.Leases.Renew(ctx, path, epoch)
}

func (d *dyingLeases) Release(ctx context.Context, path string, epoch int64) error {
	if d.dead.Load() {
		return nil
	}
	return d.Leases.Release(ctx, path, epoch)
}

// TestPublisherNodeDies: while A's lease lives a publish on B is refused;
// when A dies, B's relay and viewers end, and after the lease's TTL a
// republish on B takes the lease with a higher epoch.
func TestPublisherNodeDies(t *testing.T) {
	w := newWorld(t)
	dl := &dyingLeases{Leases: w.leases}
	a := w.newNode("a", dl, 4)
	b := w.newNode("b", w.leases, 4)
	events, err := w.svc.OpenStream(context.Background(), w.hostCaller, &clientv1.StreamHello{RoomId: w.room})
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()
	publish(t, a.RTMPAddr(), w.room, w.key, 60)
	path := w.room + "/main"
	first := a.waitLive(t, path)

	if err := publish(t, b.RTMPAddr(), w.room, w.key, 5).Wait(); err == nil {
		t.Fatal("a second publisher on node b succeeded while a's lease lives")
	}
	ffprobe(t, b.playURL(w.room, w.member)) // b relays now

	dl.dead.Store(true)
	a.stop()
	waitLiveEvent(t, events, clientv1.LiveEvent_STOPPED, path)
	waitFor(t, 10*time.Second, "b's relay to end", func() bool {
		st, _ := b.Status(context.Background(), path)
		return st.GetPrimaryNodeId() != "a" || !st.GetIsLive()
	})
	waitFor(t, 10*time.Second, "a's lease to expire", func() bool {
		_, _, ok, _ := w.leases.Lookup(context.Background(), path)
		return !ok
	})
	publish(t, b.RTMPAddr(), w.room, w.key, 30)
	second := b.waitLive(t, path)
	if second.GetPrimaryNodeId() != "b" || second.GetEpoch() <= first.GetEpoch() {
		t.Fatalf("republish: node %s epoch %d; want node b and an epoch above %d", second.GetPrimaryNodeId(), second.GetEpoch(), first.GetEpoch())
	}
	ev := waitLiveEvent(t, events, clientv1.LiveEvent_STARTED, path)
	if ev.GetEpoch() != second.GetEpoch() {
		t.Fatalf("STARTED epoch %d, want %d", ev.GetEpoch(), second.GetEpoch())
	}
}
