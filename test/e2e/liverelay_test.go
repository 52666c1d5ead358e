package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	streamv1 "github.com/croupier/croupier/api/synctv/stream/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestLiveRelayTwoGateways runs two `croupier gateway` processes of one
// gateway tier (B's embedded NATS, A pointing at it; one SQLite file):
// ffmpeg publishes into A over RTMP, a member on B gets LiveEvent STARTED
// and ffprobe on B's HTTP-FLV sees H.264 and AAC through the relay (mTLS,
// certificates of `croupier certs init`). Then A is killed: it releases
// nothing, and after the lease's TTL B's lease watcher tells the member
// STOPPED (docs/live.md).
func TestLiveRelayTwoGateways(t *testing.T) {
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (Debian package ffmpeg; .ci/run installs it)", tool)
		}
	}
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	if out, code := run(t, nil, "certs", "init", "--dir", certs); code != 0 {
		t.Fatalf("certs init: %s", out)
	}
	db := filepath.Join(dir, "rooms.db")
	liveArgs := []string{"--rtmp-addr", "127.0.0.1:0", "--relay-addr", "127.0.0.1:0",
		"--relay-tls-ca", filepath.Join(certs, "ca.crt"), "--relay-tls-cert", filepath.Join(certs, "server.crt"),
		"--relay-tls-key", filepath.Join(certs, "server.key"), "--relay-client-cert", filepath.Join(certs, "client.crt"),
		"--relay-client-key", filepath.Join(certs, "client.key")}
	b := startTierNode(t, dir, certs, db, "gwb", append([]string{"--nats", "embedded", "--nats-listen", "127.0.0.1:0"}, liveArgs...)...)
	a := startTierNode(t, dir, certs, db, "gwa", append([]string{"--nats", "external", "--nats-url", b.nats}, liveArgs...)...)
	relayA := a.proc.waitLog("live relay listening", 30*time.Second)["addr"].(string)
	b.proc.waitLog("live relay listening", 30*time.Second)
	relayRefusesAgents(t, certs, relayA)
	rtmp := a.proc.waitLog("RTMP ingest listening", 30*time.Second)["addr"].(string)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	owner := registerOn(t, ctx, a, "owner")
	bob := registerOn(t, ctx, b, "bob")
	r, err := a.client.CreateRoom(ctx, asPlayer(owner, &clientv1.CreateRoomRequest{Name: "live"}))
	if err != nil {
		t.Fatal(err)
	}
	room := r.Msg.GetRoom().GetId()
	k, err := a.client.CreateStreamKey(ctx, asPlayer(owner, &clientv1.CreateStreamKeyRequest{RoomId: room, Name: "main"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.JoinRoom(ctx, asPlayer(bob, &clientv1.JoinRoomRequest{RoomId: room})); err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	bs := b.client.MessageStream(sctx)
	bs.RequestHeader().Set("Authorization", "Bearer "+bob)
	if err := bs.Send(&clientv1.ClientMessage{Payload: &clientv1.ClientMessage_Hello{Hello: &clientv1.StreamHello{RoomId: room}}}); err != nil {
		t.Fatal(err)
	}
	nextLive := func(typ clientv1.LiveEvent_Type) *clientv1.LiveEvent {
		t.Helper()
		for {
			m, err := bs.Receive() // bounded by ctx
			if err != nil {
				t.Fatalf("bob's stream: %v", err)
			}
			if ev := m.GetLive(); ev != nil && ev.GetType() == typ {
				return ev
			}
		}
	}

	// Bob's stream is open on gwb before the publisher starts, so
	// STARTED reaches him as an event (a stream opened meanwhile learns
	// of live streams from gwb's lease watch, which may lag the log).
	for {
		m, err := bs.Receive()
		if err != nil {
			t.Fatalf("bob's stream before Ready: %v", err)
		}
		if m.GetReady() != nil {
			break
		}
	}

	pub := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
		"-f", "lavfi", "-i", "sine", "-t", "60", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac",
		"-f", "flv", "rtmp://"+rtmp+"/"+room+"/"+k.Msg.GetKey().GetKey())
	if err := pub.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Process.Kill(); _ = pub.Wait() })
	started := nextLive(clientv1.LiveEvent_STARTED)
	if !strings.Contains(string(started.GetData()), `"gwa"`) {
		t.Fatalf("STARTED %s: want node gwa", started.GetData())
	}

	url := b.rooms + started.GetPlayPath() + "?token=" + bob
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-probesize", "200000", "-analyzeduration", "2000000",
		"-show_entries", "stream=codec_name", "-of", "csv=p=0", url).Output()
	if err != nil || !strings.Contains(string(out), "h264") || !strings.Contains(string(out), "aac") {
		t.Fatalf("ffprobe on node b %s: %v %q; want h264 and aac", url, err, out)
	}

	a.proc.kill()
	stopped := nextLive(clientv1.LiveEvent_STOPPED)
	if stopped.GetEpoch() != started.GetEpoch() {
		t.Fatalf("STOPPED epoch %d, want %d", stopped.GetEpoch(), started.GetEpoch())
	}
	b.proc.waitLog("live: the publisher's node stopped renewing its lease; announcing STOPPED", 10*time.Second)
	b.proc.stop()
}

func registerOn(t *testing.T, ctx context.Context, n *tierNode, name string) string {
	t.Helper()
	resp, err := n.client.Register(ctx, connect.NewRequest(&clientv1.RegisterRequest{Username: name, Password: "password-" + name}))
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	return resp.Msg.GetAccessToken()
}

// relayRefusesAgents calls the relay at addr with the client certificate
// of `croupier certs init`, which a node pulls with, and with its agent
// certificate (the same CA, but scoped to one game): only the first gets
// past the handshake.
func relayRefusesAgents(t *testing.T, certs, addr string) {
	t.Helper()
	for _, c := range []struct {
		name string
		want codes.Code
	}{{"client", codes.OK}, {"agent", codes.Unavailable}} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := streamv1.NewStreamRelayServiceClient(certConn(t, certs, c.name, addr)).GetStreamStatus(ctx, &streamv1.GetStreamStatusRequest{StreamKey: "no-room/none"})
		cancel()
		if status.Code(err) != c.want {
			t.Fatalf("relay GetStreamStatus with the %s certificate: %v, want %v", c.name, err, c.want)
		}
	}
}
