package live_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	streamv1 "github.com/croupier/croupier/api/synctv/stream/v1"
	"github.com/croupier/croupier/internal/auth"
	"github.com/croupier/croupier/internal/cluster"
	"github.com/croupier/croupier/internal/live"
	"github.com/croupier/croupier/internal/rooms"
	"github.com/croupier/croupier/internal/store/storetest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

var fastArgon = auth.Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// world is one rooms service (one database, as nodes of a cluster share
// it) with a room, its creator (who holds a stream key), a member and an
// outsider, plus the cluster's leases and mTLS material.
type world struct {
	t                     *testing.T
	svc                   *rooms.Service
	room                  string
	key                   string
	host, member, outside string // access tokens
	hostCaller            rooms.Caller
	nats                  string         // the cluster's NATS (one in-process server)
	leases                *live.KVLeases // an observer's view of the leases
	serverTLS, clientTLS  *tls.Config
	viewerWriteTimeout    time.Duration // of the nodes newNode makes; 0: the default
	mu                    sync.Mutex
	nodes                 []*live.Node
}

// busToken authenticates the test clients on the bus's listener.
const busToken = "live-test-bus-token"

func newWorld(t *testing.T) *world {
	t.Helper()
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (Debian package ffmpeg; .ci/run installs it)", tool)
		}
	}
	ctx := context.Background()
	svc, err := rooms.New(ctx, rooms.Config{Store: storetest.SQLite(t), Argon2: fastArgon})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	bus, err := cluster.Start(ctx, cluster.Config{NodeID: "bus", Listen: "127.0.0.1:0", Token: busToken, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bus.Close)
	w := &world{t: t, svc: svc, nats: bus.ClientURL()}
	w.leases, _ = w.connect()
	reg := func(name string) (*clientv1.RegisterResponse, rooms.Caller) {
		r, err := svc.Register(ctx, "", &clientv1.RegisterRequest{Username: name, Password: "password-" + name})
		if err != nil {
			t.Fatal(err)
		}
		return r, rooms.Caller{UserID: r.GetUser().GetId(), Username: name}
	}
	h, hc := reg("host")
	m, mc := reg("member")
	o, _ := reg("outsider")
	w.host, w.member, w.outside, w.hostCaller = h.GetAccessToken(), m.GetAccessToken(), o.GetAccessToken(), hc
	room, err := svc.CreateRoom(ctx, hc, &clientv1.CreateRoomRequest{Name: "live room"})
	if err != nil {
		t.Fatal(err)
	}
	w.room = room.GetRoom().GetId()
	if _, err := svc.JoinRoom(ctx, mc, &clientv1.JoinRoomRequest{RoomId: w.room}); err != nil {
		t.Fatal(err)
	}
	k, err := svc.CreateStreamKey(ctx, hc, &clientv1.CreateStreamKeyRequest{RoomId: w.room, Name: "main"})
	if err != nil {
		t.Fatal(err)
	}
	w.key = k.GetKey().GetKey()
	w.serverTLS, w.clientTLS = testMTLS(t)
	// Every node cuts off its publisher of a rotated or revoked key, and
	// the publishers and viewers of a member whose access ended.
	svc.OnStreamKeyChange(func(room, name string) {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, n := range w.nodes {
			n.StreamKeyChanged(room, name)
		}
	})
	svc.OnLiveRevoked(func(rv rooms.LiveRevocation) {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, n := range w.nodes {
			n.Revoke(rv)
		}
	}, func(rv rooms.LiveRevocation) bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, n := range w.nodes {
			if n.Concerns(rv) {
				return true
			}
		}
		return false
	})
	return w
}

// leaseTTL is the tests' lease TTL: short, but three renewals long, so a
// loaded machine does not lose a lease by a slow renewal.
const leaseTTL = 2 * time.Second

// connect opens a connection of its own to the cluster's NATS, as a
// gateway process would, and the leases over it.
func (w *world) connect() (*live.KVLeases, *nats.Conn) {
	t := w.t
	t.Helper()
	nc, err := nats.Connect(w.nats, nats.Token(busToken))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := live.NewKVLeases(ctx, js, live.KVLeasesConfig{TTL: leaseTTL, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return l, nc
}

// node is one gateway node: live.Node with RTMP on 127.0.0.1:0, its
// HTTP-FLV handler and its StreamRelayService over mTLS, its own NATS
// connection, and a rooms system that can die with it.
type node struct {
	*live.Node
	url   string // HTTP base
	relay string // StreamRelayService address
	audit chan live.AuditEvent
	rooms *mortalRooms
	nc    *nats.Conn
	stop  func()
}

// mortalRooms is the rooms system as a node sees it: once the node is
// dead, what it would send the room (LiveEvents) goes nowhere.
type mortalRooms struct {
	live.Rooms
	dead atomic.Bool
	// afterKeyCheck, when set, runs once after the next PublishKey (a
	// change landing between the check at the door and the registration).
	afterKeyCheck atomic.Pointer[func()]
	// hung makes PublishKey wait out its context, as on a database that
	// does not answer.
	hung atomic.Bool
}

func (m *mortalRooms) PublishKey(ctx context.Context, roomID, key string) (string, string, error) {
	if m.hung.Load() {
		<-ctx.Done()
		return "", "", ctx.Err()
	}
	name, holder, err := m.Rooms.PublishKey(ctx, roomID, key)
	if fn := m.afterKeyCheck.Swap(nil); fn != nil {
		(*fn)()
	}
	return name, holder, err
}

func (m *mortalRooms) LiveEvent(ctx context.Context, roomID string, ev *clientv1.LiveEvent) {
	if !m.dead.Load() {
		m.Rooms.LiveEvent(ctx, roomID, ev)
	}
}

// kill stops the node as a crash would: its NATS connection drops first,
// so it neither renews nor releases its leases, and it tells nobody.
func (nd *node) kill() {
	nd.rooms.dead.Store(true)
	nd.nc.Close()
	nd.stop()
}

func (w *world) newNode(id string, maxStreams int) *node {
	t := w.t
	t.Helper()
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	leases, nc := w.connect()
	nd := &node{audit: make(chan live.AuditEvent, 16), relay: gl.Addr().String(), rooms: &mortalRooms{Rooms: w.svc}, nc: nc}
	ln, err := live.New(live.Config{NodeID: id, RTMPAddr: "127.0.0.1:0", RelayAddr: gl.Addr().String(), MaxStreams: maxStreams,
		Rooms: nd.rooms, Leases: leases, Logger: testLogger(t),
		// A loaded machine can stall a viewer past the default 1 s; the
		// tests read every frame (skipping is tested in flv_test.go).
		MaxLag:             10 * time.Second,
		ViewerWriteTimeout: w.viewerWriteTimeout,
		RelayDial: func(addr string) (*grpc.ClientConn, error) {
			return grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(w.clientTLS)))
		},
		Audit: func(ev live.AuditEvent) {
			select {
			case nd.audit <- ev:
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ln.Start(); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	w.nodes = append(w.nodes, ln)
	w.mu.Unlock()
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(w.serverTLS)))
	streamv1.RegisterStreamRelayServiceServer(gs, ln.RelayServer())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = gs.Serve(gl) }()
	mux := http.NewServeMux()
	mux.Handle(live.PlayPrefix, ln)
	hs := httptest.NewServer(mux)
	nd.Node, nd.url = ln, hs.URL
	var once sync.Once
	nd.stop = func() {
		once.Do(func() {
			hs.CloseClientConnections()
			ln.Close()
			gs.Stop()
			hs.Close()
			wg.Wait()
		})
	}
	t.Cleanup(nd.stop)
	return nd
}

// unhook stops telling nd of the key changes and revocations made
// through the world's rooms service, as a node of a cluster that missed
// them: only its own checks can cut its publishers off.
func (w *world) unhook(nd *node) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.nodes = slices.DeleteFunc(w.nodes, func(n *live.Node) bool { return n == nd.Node })
}

func (nd *node) playURL(room, token string) string {
	return nd.url + live.PlayPath(room, "main") + "?token=" + token
}

// publish starts ffmpeg publishing a test pattern and a sine tone
// (H.264/AAC) to rtmp://addr/room/key; it runs until the test ends.
func publish(t *testing.T, addr, room, key string, seconds int) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
		"-t", itoa(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25",
		"-c:a", "aac", "-b:a", "64k", "-f", "flv", "rtmp://"+addr+"/"+room+"/"+key)
	cmd.Stderr = &testWriter{t: t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

func itoa(n int) string { return big.NewInt(int64(n)).String() }

// waitFor polls cond every 20 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (nd *node) waitLive(t *testing.T, path string) *streamv1.GetStreamStatusResponse {
	t.Helper()
	var st *streamv1.GetStreamStatusResponse
	waitFor(t, 20*time.Second, path+" live on "+nd.NodeID(), func() bool {
		var err error
		st, err = nd.Status(context.Background(), path)
		return err == nil && st.GetIsLive() && st.GetStats().GetTotalBytes() > 0
	})
	return st
}

type probed struct {
	Streams []struct {
		CodecType string `json:"codec_type"`
		CodecName string `json:"codec_name"`
	} `json:"streams"`
}

// ffprobe reads the HTTP-FLV stream at url and returns its streams.
func ffprobe(t *testing.T, url string) probed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-probesize", "200000", "-analyzeduration", "2000000",
		"-show_entries", "stream=codec_type,codec_name", "-of", "json", url).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", url, err)
	}
	var p probed
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatalf("ffprobe output %q: %v", out, err)
	}
	return p
}

func (p probed) codecs() map[string]string {
	m := map[string]string{}
	for _, s := range p.Streams {
		m[s.CodecType] = s.CodecName
	}
	return m
}

// testMTLS makes a CA and a server and client certificate it signs.
func testMTLS(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	leaf := func(serial int64, usage x509.ExtKeyUsage) tls.Certificate {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "node"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
	}
	server = &tls.Config{Certificates: []tls.Certificate{leaf(2, x509.ExtKeyUsageServerAuth)}, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13}
	client = &tls.Config{Certificates: []tls.Certificate{leaf(3, x509.ExtKeyUsageClientAuth)}, RootCAs: pool, MinVersion: tls.VersionTLS13}
	return server, client
}

// testWriter logs ffmpeg's errors in the test's output.
type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Logf("ffmpeg: %s", bytes.TrimSpace(p))
	return len(p), nil
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(&testWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
