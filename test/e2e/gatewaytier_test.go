package e2e

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/pem"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"github.com/croupier/croupier/api/synctv/client/v1/clientv1connect"
	clusterv1 "github.com/croupier/croupier/api/synctv/cluster/v1"
	datav1 "github.com/croupier/croupier/api/synctv/data/v1"
	"github.com/croupier/croupier/internal/ratelimit"
	"github.com/croupier/croupier/internal/tlsconf"
	"github.com/croupier/croupier/sdk/gateway"
	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// tierNode is one `croupier gateway` process of the gateway tier.
type tierNode struct {
	proc               *proc
	rooms, nats, grpcs string
	client             clientv1connect.ClientServiceClient
}

// startTierNode starts a gateway in dir; the tier's nodes share the bus
// token dir/nats.token (written by the first).
func startTierNode(t *testing.T, dir, certs, db, id string, natsArgs ...string) *tierNode {
	t.Helper()
	natsArgs = append([]string{"--nats-token-file", busTokenFile(t, dir)}, natsArgs...)
	args := append([]string{"gateway", "--log-format", "json", "--node-id", id, "--data-dir", filepath.Join(dir, id),
		"--client-addr", "127.0.0.1:0", "--business-addr", "127.0.0.1:0", "--rooms-addr", "127.0.0.1:0", "--rtmp-addr=",
		"--store-dsn", db, "--cluster-addr", "127.0.0.1:0",
		"--cluster-tls-ca", filepath.Join(certs, "ca.crt"), "--cluster-tls-cert", filepath.Join(certs, "server.crt"),
		"--cluster-tls-key", filepath.Join(certs, "server.key")}, natsArgs...)
	p := start(t, id, bins.croupier, args...)
	joined := p.waitLog("gateway tier joined", 60*time.Second)
	rooms := p.waitLog("rooms listening", 30*time.Second)
	n := &tierNode{proc: p, rooms: rooms["url"].(string), nats: joined["nats_url"].(string), grpcs: joined["cluster_addr"].(string)}
	tr := &http.Transport{}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	n.client = clientv1connect.NewClientServiceClient(&http.Client{Transport: tr}, n.rooms, connect.WithGRPC())
	return n
}

// busTokenFile writes (once) a 0600 NATS bus token the nodes started in
// dir share, as an operator would.
func busTokenFile(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "nats.token")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if err := os.WriteFile(p, []byte(rand.Text()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func asPlayer[T any](token string, msg *T) *connect.Request[T] {
	r := connect.NewRequest(msg)
	r.Header().Set("Authorization", "Bearer "+token)
	return r
}

// TestGatewayTierTwoProcesses runs two `croupier gateway` processes on one
// NATS (the first one's embedded server; the second points at it) and one
// SQLite file: a seek on the first reaches a member on the second, and
// each node's ClusterService (mTLS) lists both nodes.
func TestGatewayTierTwoProcesses(t *testing.T) {
	dir, certs, db := tierFiles(t)
	// The second node certificate, revoked before the nodes start (the row
	// `croupier certs revoke` writes where server and gateways share the
	// database): each node loads the list before it serves.
	revokeInDB(t, db, filepath.Join(certs, "node2.crt"))
	a := startTierNode(t, dir, certs, db, "gwa", "--nats", "embedded", "--nats-listen", "127.0.0.1:0")
	b := startTierNode(t, dir, certs, db, "gwb", "--nats", "external", "--nats-url", a.nats)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	register := func(n *tierNode, name string) (string, string) {
		resp, err := n.client.Register(ctx, connect.NewRequest(&clientv1.RegisterRequest{Username: name, Password: "password-" + name}))
		if err != nil {
			t.Fatalf("register %s: %v", name, err)
		}
		return resp.Msg.GetUser().GetId(), resp.Msg.GetAccessToken()
	}
	_, owner := register(a, "owner")
	_, bob := register(b, "bob")
	r, err := a.client.CreateRoom(ctx, asPlayer(owner, &clientv1.CreateRoomRequest{Name: "tier", Settings: &clientv1.RoomSettings{
		DefaultPermissions: uint64(clientv1.Permission_PERMISSION_CHAT | clientv1.Permission_PERMISSION_CONTROL_PLAYBACK)}}))
	if err != nil {
		t.Fatal(err)
	}
	room := r.Msg.GetRoom().GetId()
	mv, err := a.client.AddMovie(ctx, asPlayer(owner, &clientv1.AddMovieRequest{RoomId: room, Url: "https://example.com/a.mp4"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.client.SetCurrentMovie(ctx, asPlayer(owner, &clientv1.SetCurrentMovieRequest{RoomId: room, MovieId: mv.Msg.GetMovie().GetId()})); err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.JoinRoom(ctx, asPlayer(bob, &clientv1.JoinRoomRequest{RoomId: room})); err != nil {
		t.Fatal(err)
	}

	// Bob's stream on B; the seek on A reaches it.
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	bs := b.client.MessageStream(sctx)
	bs.RequestHeader().Set("Authorization", "Bearer "+bob)
	if err := bs.Send(&clientv1.ClientMessage{Payload: &clientv1.ClientMessage_Hello{Hello: &clientv1.StreamHello{RoomId: room}}}); err != nil {
		t.Fatal(err)
	}
	next := func(match func(*clientv1.ServerMessage) bool) *clientv1.ServerMessage {
		t.Helper()
		for {
			m, err := bs.Receive() // bounded by ctx
			if err != nil {
				t.Fatalf("bob's stream: %v", err)
			}
			if match(m) {
				return m
			}
		}
	}
	next(func(m *clientv1.ServerMessage) bool { return m.GetReady() != nil })
	seek, err := a.client.Seek(ctx, asPlayer(owner, &clientv1.SeekRequest{RoomId: room, Position: 42}))
	if err != nil {
		t.Fatal(err)
	}
	got := next(func(m *clientv1.ServerMessage) bool { return m.GetRoomState().GetState().GetPosition() == 42 })
	if v := got.GetRoomState().GetState().GetVersion(); v != seek.Msg.GetState().GetVersion() {
		t.Fatalf("bob on B sees version %d, A answered %d", v, seek.Msg.GetState().GetVersion())
	}

	// The ClusterService of B, over mTLS with the CA's client certificate.
	tc, err := tlsconf.ClientConfig(filepath.Join(certs, "ca.crt"), filepath.Join(certs, "client.crt"), filepath.Join(certs, "client.key"), "localhost")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(b.grpcs, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	nodes, err := clusterv1.NewClusterServiceClient(conn).GetNodes(ctx, &clusterv1.GetNodesRequest{OnlyAlive: true})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, n := range nodes.GetNodes() {
		ids = append(ids, n.GetNodeId())
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"gwa", "gwb"}) {
		t.Fatalf("GetNodes on B: %v, want [gwa gwb]", ids)
	}
	if _, err := clusterv1.NewClusterServiceClient(certConn(t, certs, "node2", b.grpcs)).GetNodes(ctx, &clusterv1.GetNodesRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("GetNodes on B with a revoked node certificate: %v, want the handshake refused (UNAVAILABLE)", err)
	}
	// A playback change another node makes through B is in the audit log
	// (croupier gateway passes its audit log to the node), with the
	// caller's certificate as actor and the node id it claims.
	if _, err := datav1.NewDataSyncServiceClient(conn).SyncRoomState(ctx, &datav1.SyncRoomStateRequest{RoomId: room,
		SourceNodeId: "seed-x", State: &datav1.RoomState{Status: "paused", CurrentTime: 7, Rate: 1}}); err != nil {
		t.Fatal(err)
	}
	sqldb, err := sql.Open("sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	defer sqldb.Close()
	waitFor(t, 20*time.Second, "the node's playback change in the audit log", func() bool {
		var actor, payload string
		err := sqldb.QueryRowContext(ctx, `SELECT actor, payload FROM audit_log WHERE action = 'room.playback.node'`).Scan(&actor, &payload)
		return err == nil && strings.HasPrefix(actor, "croupier://") && strings.Contains(payload, `"seed-x"`)
	})

	// The login throttle is the tier's: B publishes its failed logins on
	// the tier's NATS for the other nodes (which apply them: rooms
	// TestThrottlesAcrossNodes).
	token, err := os.ReadFile(busTokenFile(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(a.nats, nats.Token(strings.TrimSpace(string(token))))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	outcomes, err := nc.SubscribeSync(ratelimit.SubjectPlayerLogins)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil { // B's server (A's) knows the interest
		t.Fatal(err)
	}
	if _, err := b.client.Login(ctx, connect.NewRequest(&clientv1.LoginRequest{Username: "bob", Password: "wrong"})); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("wrong password: %v", err)
	}
	m, err := outcomes.NextMsg(20 * time.Second)
	if err != nil {
		t.Fatalf("no login outcome from B on %s: %v", ratelimit.SubjectPlayerLogins, err)
	}
	if got := string(m.Data); !strings.Contains(got, `"node":"gwb"`) || !strings.Contains(got, `"user":"bob"`) || strings.Contains(got, `"ok":true`) {
		t.Fatalf("B's login outcome %s; want bob's failure from gwb", got)
	}
	b.proc.stop() // B first: its NATS is A's
	a.proc.stop()
}

// tierFiles prepares what the tier's nodes share, in a new directory dir:
// the CA and server certificate in certs (croupier certs init), a second
// node certificate certs/node2.crt, and the migrated SQLite database db.
func tierFiles(t *testing.T) (dir, certs, db string) {
	t.Helper()
	dir = t.TempDir()
	certs, db = filepath.Join(dir, "certs"), filepath.Join(dir, "rooms.db")
	if out, code := run(t, nil, "certs", "init", "--dir", certs); code != 0 {
		t.Fatalf("certs init: %s", out)
	}
	if out, code := run(t, nil, "migrate", "--store-driver", "sqlite", "--store-dsn", db); code != 0 {
		t.Fatalf("migrate: %s", out)
	}
	if out, code := run(t, nil, "certs", "issue", "client", "--name", "operator", "--ca-dir", certs, "--out", filepath.Join(certs, "node2")); code != 0 {
		t.Fatalf("certs issue client: %s", out)
	}
	return dir, certs, db
}

// revokeInDB puts the certificate in certFile on the revocation list of
// the SQLite database db, as `croupier certs revoke` does through a server
// on that database.
func revokeInDB(t *testing.T, db, certFile string) {
	t.Helper()
	pemBytes, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		t.Fatalf("%s: no PEM block", certFile)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sqldb, err := sql.Open("sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	defer sqldb.Close()
	if _, err := sqldb.Exec(`INSERT INTO revoked_certificates (serial, subject, reason, revoked_by, revoked_at) VALUES (?, '', 'e2e', 'e2e', ?)`,
		cert.SerialNumber.Text(16), time.Now().UnixMilli()); err != nil {
		t.Fatal(err)
	}
}

// TestGatewayRevocationCutsOpenConnections: a `croupier gateway` follows
// the revocation list in its database. A business connected over mTLS and
// a node following the room log (SyncEvents) are cut once their
// certificates are revoked there and the gateway reloads the list (every
// 10 s); neither certificate is admitted again (the SDK's reconnection is
// refused in the handshake).
func TestGatewayRevocationCutsOpenConnections(t *testing.T) {
	dir, certs, db := tierFiles(t)
	if out, code := run(t, nil, "certs", "issue", "business", "--name", "chat-1", "--ca-dir", certs); code != 0 {
		t.Fatalf("certs issue business: %s", out)
	}
	n := startTierNode(t, dir, certs, db, "gwr", "--nats", "embedded", "--nats-listen", "127.0.0.1:0",
		"--business-tls-ca", filepath.Join(certs, "ca.crt"), "--business-tls-cert", filepath.Join(certs, "server.crt"),
		"--business-tls-key", filepath.Join(certs, "server.key"))
	businessAddr := n.proc.waitLog("gateway started", 30*time.Second)["business_addr"].(string)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	btls, err := tlsconf.ClientConfig(filepath.Join(certs, "ca.crt"), filepath.Join(certs, "business-chat-1.crt"), filepath.Join(certs, "business-chat-1.key"), "localhost")
	if err != nil {
		t.Fatal(err)
	}
	// Each time the SDK's connection ends: why (its log's "err").
	disconnects := make(chan string, 64)
	biz, err := gateway.New(gateway.Config{Addr: businessAddr, WorkerID: 1, ServerID: 1, TLS: btls, ReconnectMax: time.Second,
		Logger: slog.New(onDisconnect{func(why string) {
			select {
			case disconnects <- why:
			default:
			}
		}})})
	if err != nil {
		t.Fatal(err)
	}
	bctx, bstop := context.WithCancel(ctx)
	bdone := make(chan error, 1)
	go func() { bdone <- biz.Run(bctx) }()
	t.Cleanup(func() { bstop(); <-bdone })
	if err := biz.WaitReady(ctx); err != nil {
		t.Fatalf("business over mTLS: %v", err)
	}
	sync, err := clusterv1.NewClusterServiceClient(certConn(t, certs, "node2", n.grpcs)).SyncEvents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sync.Header(); err != nil {
		t.Fatalf("SyncEvents with a node certificate: %v", err)
	}

	revokeInDB(t, db, filepath.Join(certs, "business-chat-1.crt"))
	revokeInDB(t, db, filepath.Join(certs, "node2.crt"))
	for { // bounded by ctx; the gateway reloads the list every 10 s
		if _, err = sync.Recv(); err != nil {
			break
		}
	}
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("SyncEvents opened before the revocation: %v, want it cut UNAUTHENTICATED (revoked)", err)
	}
	n.proc.waitLog("business connection closed: its certificate is revoked", 15*time.Second)
	// The SDK reconnects; the gateway refuses it in the handshake.
	for refused := false; !refused; {
		select {
		case why := <-disconnects:
			refused = strings.Contains(why, "bad certificate")
		case <-ctx.Done():
			t.Fatal("the business's reconnection was not refused in the handshake")
		}
	}
	conn, err := tls.Dial("tcp", businessAddr, btls)
	if err == nil {
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = conn.Read(make([]byte, 1)) // TLS 1.3: the server's refusal comes after the client's handshake
		_ = conn.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "bad certificate") {
		t.Fatalf("a new business connection with the revoked certificate: %v, want the handshake refused (bad certificate)", err)
	}
}

// onDisconnect is a slog handler that calls f with the error of each
// "disconnected; reconnecting" warning of the gateway SDK.
type onDisconnect struct{ f func(why string) }

func (h onDisconnect) Enabled(context.Context, slog.Level) bool { return true }
func (h onDisconnect) Handle(_ context.Context, r slog.Record) error {
	if !strings.Contains(r.Message, "disconnected; reconnecting") {
		return nil
	}
	why := ""
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			why = a.Value.String()
		}
		return true
	})
	h.f(why)
	return nil
}
func (h onDisconnect) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h onDisconnect) WithGroup(string) slog.Handler      { return h }
