package live_test

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"github.com/croupier/croupier/internal/live"
	"github.com/croupier/croupier/internal/rooms"
)

// TestPublishAndPlay: ffmpeg publishes H.264/AAC over RTMP with the
// room's key; ffprobe reads the HTTP-FLV output as a member and sees both
// streams; members with a stream open get LiveEvent STARTED.
func TestPublishAndPlay(t *testing.T) {
	w := newWorld(t)
	a := w.newNode("a", 4)
	ctx := context.Background()
	events, err := w.svc.OpenStream(ctx, w.hostCaller, &clientv1.StreamHello{RoomId: w.room})
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()

	publish(t, a.RTMPAddr(), w.room, w.key, 30)
	path := w.room + "/main"
	st := a.waitLive(t, path)
	if st.GetPrimaryNodeId() != "a" || st.GetEpoch() < 1 {
		t.Fatalf("status %v: want node a, epoch ≥ 1", st)
	}
	waitLiveEvent(t, events, clientv1.LiveEvent_STARTED, path)

	got := ffprobe(t, a.playURL(w.room, w.member)).codecs()
	if got["video"] != "h264" || got["audio"] != "aac" {
		t.Fatalf("ffprobe saw %v; want video h264 and audio aac", got)
	}

	for _, tc := range []struct {
		name, token string
		want        int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"outsider", w.outside, http.StatusForbidden},
		{"garbage token", "x.y.z", http.StatusUnauthorized},
	} {
		resp, err := http.Get(a.playURL(w.room, tc.token))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
	}
	resp, err := http.Get(a.url + "/live/" + w.room + "/nosuch.flv?token=" + w.member)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("stream not live: status %d, want 404", resp.StatusCode)
	}
}

// TestWrongKeyRefused: a wrong key, a revoked key and a second publisher
// on the same key are refused at publish (ffmpeg fails) and audited.
func TestWrongKeyRefused(t *testing.T) {
	w := newWorld(t)
	a := w.newNode("a", 4)

	bad := publish(t, a.RTMPAddr(), w.room, "main.not-the-key", 5)
	if err := bad.Wait(); err == nil {
		t.Fatal("ffmpeg with a wrong key succeeded")
	}
	if ev := <-a.audit; ev.Action != "publish refused" || ev.RoomID != w.room {
		t.Fatalf("audit %+v", ev)
	}

	publish(t, a.RTMPAddr(), w.room, w.key, 30)
	a.waitLive(t, w.room+"/main")
	second := publish(t, a.RTMPAddr(), w.room, w.key, 5)
	if err := second.Wait(); err == nil {
		t.Fatal("a second publisher on the same key succeeded")
	}
	if ev := <-a.audit; ev.Reason == "" {
		t.Fatalf("audit %+v", ev)
	}

	// Revoking the key cuts the publisher off and refuses the key after.
	if _, err := w.svc.RevokeStreamKey(context.Background(), w.hostCaller, &clientv1.RevokeStreamKeyRequest{RoomId: w.room, Name: "main"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "publisher cut off", func() bool {
		st, _ := a.Status(context.Background(), w.room+"/main")
		return !st.GetIsLive()
	})
	again := publish(t, a.RTMPAddr(), w.room, w.key, 5)
	if err := again.Wait(); err == nil {
		t.Fatal("ffmpeg with a revoked key succeeded")
	}
}

// TestStreamKeyPermission: only members with LIVE manage keys.
func TestStreamKeyPermission(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	c, err := w.svc.Authenticate(ctx, w.member)
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.svc.CreateStreamKey(ctx, c, &clientv1.CreateStreamKeyRequest{RoomId: w.room, Name: "mine"})
	if err == nil {
		t.Fatal("a member without LIVE created a key")
	}
	if _, err := w.svc.CreateStreamKey(ctx, w.hostCaller, &clientv1.CreateStreamKeyRequest{RoomId: w.room, Name: "main"}); err == nil {
		t.Fatal("a second key for the same stream was created")
	}
	if _, err := w.svc.CreateStreamKey(ctx, w.hostCaller, &clientv1.CreateStreamKeyRequest{RoomId: w.room, Name: "Bad Name"}); err == nil {
		t.Fatal("a bad stream name was accepted")
	}
	k, err := w.svc.RotateStreamKey(ctx, w.hostCaller, &clientv1.RotateStreamKeyRequest{RoomId: w.room, Name: "main"})
	if err != nil {
		t.Fatal(err)
	}
	if k.GetKey().GetKey() == w.key {
		t.Fatal("rotation returned the same key")
	}
	if _, _, err := w.svc.PublishKey(ctx, w.room, w.key); err == nil {
		t.Fatal("the old key still publishes after rotation")
	}
	if _, _, err := w.svc.PublishKey(ctx, w.room, k.GetKey().GetKey()); err != nil {
		t.Fatalf("the new key: %v", err)
	}
}

func waitLiveEvent(t *testing.T, s *rooms.Stream, typ clientv1.LiveEvent_Type, path string) *clientv1.LiveEvent {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case m := <-s.Out():
			if ev := m.Msg.GetLive(); ev != nil && ev.GetType() == typ && ev.GetStreamKey() == path {
				return ev
			}
		case <-s.Done():
			t.Fatal("room stream ended")
		case <-timeout:
			t.Fatalf("no LiveEvent %v for %s", typ, path)
		}
	}
}

// TestLateMemberSeesLiveStream: a member who opens the room after the
// stream started gets LiveEvent STARTED with its play path right after
// ready, whether the stream is published on the member's node or known
// there from the cluster's leases; after it stops, none.
func TestLateMemberSeesLiveStream(t *testing.T) {
	w := newWorld(t)
	a := w.newNode("a", 4)
	b := w.newNode("b", 4)
	ctx := context.Background()
	member, err := w.svc.Authenticate(ctx, w.member)
	if err != nil {
		t.Fatal(err)
	}
	ffmpeg := publish(t, a.RTMPAddr(), w.room, w.key, 30)
	path := w.room + "/main"
	st := a.waitLive(t, path)

	for _, nd := range []*node{a, b} {
		w.svc.OnLiveStreams(nd.LiveStreams)
		waitFor(t, 10*time.Second, "node "+nd.NodeID()+" to list the stream", func() bool {
			return len(nd.LiveStreams(w.room)) == 1
		})
		s, err := w.svc.OpenStream(ctx, member, &clientv1.StreamHello{RoomId: w.room})
		if err != nil {
			t.Fatal(err)
		}
		ev := waitLiveEvent(t, s, clientv1.LiveEvent_STARTED, path)
		s.Close()
		if ev.GetPlayPath() != live.PlayPath(w.room, "main") || ev.GetEpoch() != st.GetEpoch() {
			t.Fatalf("node %s: late STARTED %v; want play path %s epoch %d", nd.NodeID(), ev, live.PlayPath(w.room, "main"), st.GetEpoch())
		}
	}
	_ = ffmpeg.Process.Kill()
	waitFor(t, 10*time.Second, "the stream to leave both lists", func() bool {
		return len(a.LiveStreams(w.room)) == 0 && len(b.LiveStreams(w.room)) == 0
	})
	if got := b.LiveStreams("other-room"); len(got) != 0 {
		t.Fatalf("another room lists %v", got)
	}
}

// TestRTMPPlay: ffmpeg reads the stream over RTMP with a member's token
// (on the publisher's node and on another, through the relay) and copies
// H.264 and AAC into a file; without a token or as an outsider it is
// refused.
func TestRTMPPlay(t *testing.T) {
	w := newWorld(t)
	a := w.newNode("a", 4)
	b := w.newNode("b", 4)
	publish(t, a.RTMPAddr(), w.room, w.key, 30)
	a.waitLive(t, w.room+"/main")

	read := func(nd *node, token string) error {
		out := filepath.Join(t.TempDir(), "out.flv")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error",
			"-i", "rtmp://"+nd.RTMPAddr()+"/"+w.room+"/main?token="+token, "-t", "2", "-c", "copy", "-f", "flv", out)
		cmd.Stderr = &testWriter{t: t}
		if err := cmd.Run(); err != nil {
			return err
		}
		if got := ffprobe(t, out).codecs(); got["video"] != "h264" || got["audio"] != "aac" {
			t.Fatalf("ffmpeg read %v from node %s; want video h264 and audio aac", got, nd.NodeID())
		}
		return nil
	}
	for _, nd := range []*node{a, b} {
		if err := read(nd, w.member); err != nil {
			t.Fatalf("ffmpeg -i rtmp://%s as a member: %v", nd.NodeID(), err)
		}
	}
	if err := read(a, ""); err == nil {
		t.Fatal("ffmpeg read the stream without a token")
	}
	if err := read(a, w.outside); err == nil {
		t.Fatal("ffmpeg read the stream as an outsider")
	}
}

// TestRTMPS: ffmpeg publishes over RTMP in TLS (rtmps://) and reads the
// stream back the same way.
func TestRTMPS(t *testing.T) {
	w := newWorld(t)
	leases, _ := w.connect()
	tc := w.serverTLS.Clone()
	tc.ClientAuth, tc.ClientCAs = tls.NoClientCert, nil
	n, err := live.New(live.Config{NodeID: "s", RTMPSAddr: "127.0.0.1:0", RTMPSTLS: tc, Rooms: w.svc, Leases: leases, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	if n.RTMPAddr() != "" {
		t.Fatalf("RTMP listener %s; want only RTMPS", n.RTMPAddr())
	}
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-f", "lavfi", "-i", "sine",
		"-t", "30", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac",
		"-f", "flv", "rtmps://"+n.RTMPSAddr()+"/"+w.room+"/"+w.key)
	cmd.Stderr = &testWriter{t: t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitFor(t, 20*time.Second, "the stream live over RTMPS", func() bool {
		st, err := n.Status(context.Background(), w.room+"/main")
		return err == nil && st.GetStats().GetTotalBytes() > 0
	})
	got := ffprobe(t, "rtmps://"+n.RTMPSAddr()+"/"+w.room+"/main?token="+w.member).codecs()
	if got["video"] != "h264" || got["audio"] != "aac" {
		t.Fatalf("ffprobe over rtmps saw %v; want h264 and aac", got)
	}
}

// TestViewerLimits: a member watches a stream on at most 4 HTTP-FLV
// connections (the 5th is 429 until one closes), and a viewer that stops
// reading is cut off once a write to it has waited ViewerWriteTimeout —
// it no longer holds its goroutine and queue, and misses no ban.
func TestViewerLimits(t *testing.T) {
	w := newWorld(t)
	w.viewerWriteTimeout = 300 * time.Millisecond
	a := w.newNode("a", 4)
	publish(t, a.RTMPAddr(), w.room, w.key, 30)
	a.waitLive(t, w.room+"/main")

	// A player that reads nothing: every write blocks until the deadline
	// the handler set (forever without one). A loopback socket's buffers
	// would take the stream tens of seconds to fill.
	stuck := &stuckWriter{header: http.Header{}, release: make(chan struct{})}
	defer close(stuck.release)
	req := httptest.NewRequest(http.MethodGet, a.playURL(w.room, w.member), nil)
	served := make(chan struct{})
	go func() {
		defer close(served)
		a.ServeHTTP(stuck, req)
	}()
	select {
	case <-served:
	case <-time.After(20 * time.Second):
		t.Fatal("a viewer that does not read was not cut off within 20 s")
	}
	if stuck.writes.Load() == 0 {
		t.Fatal("the stalled viewer was never written to")
	}

	var open []*http.Response
	defer func() {
		for _, r := range open {
			r.Body.Close()
		}
	}()
	get := func() *http.Response {
		t.Helper()
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get(a.playURL(w.room, w.member))
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == http.StatusOK {
			// Read as a player does (until the body is closed), or the
			// 300 ms write timeout would cut it off.
			go func() { _, _ = io.Copy(io.Discard, resp.Body) }()
		}
		return resp
	}
	for range 4 {
		r := get()
		if r.StatusCode != http.StatusOK {
			t.Fatalf("viewer %d: status %d", len(open)+1, r.StatusCode)
		}
		open = append(open, r)
	}
	r := get()
	r.Body.Close()
	if r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a 5th connection of the same member: status %d, want 429", r.StatusCode)
	}
	open[0].Body.Close()
	open = open[1:]
	waitFor(t, 10*time.Second, "a connection free again", func() bool {
		r := get()
		if r.StatusCode != http.StatusOK {
			r.Body.Close()
			return false
		}
		open = append(open, r)
		return true
	})
}

// stuckWriter is the response of a player that reads nothing: Write
// blocks until the write deadline (http.ResponseController's) has passed,
// or, with none, until release is closed.
type stuckWriter struct {
	header   http.Header
	release  chan struct{}
	deadline atomic.Pointer[time.Time]
	writes   atomic.Int32
}

func (w *stuckWriter) Header() http.Header { return w.header }
func (w *stuckWriter) WriteHeader(int)     {}
func (w *stuckWriter) Flush()              {}

func (w *stuckWriter) SetWriteDeadline(t time.Time) error {
	w.deadline.Store(&t)
	return nil
}

func (w *stuckWriter) Write(p []byte) (int, error) {
	w.writes.Add(1)
	var expired <-chan time.Time
	if d := w.deadline.Load(); d != nil && !d.IsZero() {
		expired = time.After(time.Until(*d))
	}
	select {
	case <-expired:
		return 0, os.ErrDeadlineExceeded
	case <-w.release:
		return 0, io.ErrClosedPipe
	}
}
