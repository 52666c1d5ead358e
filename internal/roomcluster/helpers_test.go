package roomcluster_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"github.com/croupier/croupier/internal/cluster/clustertest"
	"github.com/croupier/croupier/internal/freeport"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"github.com/croupier/croupier/api/synctv/client/v1/clientv1connect"
	clusterv1 "github.com/croupier/croupier/api/synctv/cluster/v1"
	datav1 "github.com/croupier/croupier/api/synctv/data/v1"
	"github.com/croupier/croupier/internal/audit"
	"github.com/croupier/croupier/internal/auth"
	"github.com/croupier/croupier/internal/certs"
	"github.com/croupier/croupier/internal/roomcluster"
	"github.com/croupier/croupier/internal/rooms"
	"github.com/croupier/croupier/internal/rooms/roomsrpc"
	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/store/storetest"
	"github.com/croupier/croupier/internal/tlsconf"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

var fastArgon = auth.Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// A short heartbeat; a dead-after longer than a raft election (4–9 s),
// so that no live node is taken for dead while the membership bucket
// elects a leader on a loaded machine. Stopped nodes remove their entry.
const (
	testHeartbeat = 250 * time.Millisecond
	testDeadAfter = 30 * time.Second
)

// sharedStore is the store every gateway node of a test shares:
// PostgreSQL when CROUPIER_TEST_POSTGRES_DSN is set (make unit), else one
// SQLite file.
func sharedStore(t testing.TB) *store.Store {
	t.Helper()
	if os.Getenv(storetest.EnvPostgresDSN) != "" {
		return storetest.Postgres(t)
	}
	return storetest.SQLite(t)
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// natsCluster is n embedded NATS servers with JetStream, joined by routes,
// all on 127.0.0.1 port 0 (as nats-server's own tests do).
type natsCluster struct {
	t       testing.TB
	dirs    []string
	servers []*server.Server
	// ports are the route ports, fixed so that every server names all
	// the others (JetStream clustering needs configured routes) and a
	// restarted server comes back on its own.
	ports []int
}

func startNATS(t testing.TB, n int) *natsCluster {
	t.Helper()
	c := &natsCluster{t: t, servers: make([]*server.Server, n)}
	for i := range n {
		c.dirs = append(c.dirs, filepath.Join(t.TempDir(), fmt.Sprint("js", i)))
		c.ports = append(c.ports, freePort(t))
	}
	for i := range n {
		c.start(i)
	}
	t.Cleanup(func() {
		for _, s := range c.servers {
			if s != nil {
				s.Shutdown()
				s.WaitForShutdown()
			}
		}
	})
	// JetStream is ready when the meta group has a leader.
	nc := c.connect("probe")
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	clustertest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		return err
	})
	return c
}

func (c *natsCluster) start(i int) {
	c.t.Helper()
	o := &server.Options{ServerName: fmt.Sprint("nats", i), Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: c.dirs[i],
		Cluster: server.ClusterOpts{Name: "croupier-test", Host: "127.0.0.1", Port: c.ports[i]}}
	var routes []string
	for j, p := range c.ports {
		if j != i {
			routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
		}
	}
	o.Routes = server.RoutesFromStr(strings.Join(routes, ","))
	s, err := server.NewServer(o)
	if err != nil {
		c.t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(60 * time.Second) {
		c.t.Fatalf("nats server %d not ready", i)
	}
	c.servers[i] = s
}

// freePort is a port on 127.0.0.1 that was free a moment ago, outside the
// kernel's ephemeral range (freeport).
func freePort(t testing.TB) int {
	t.Helper()
	p, err := freeport.Take(1)
	if err != nil {
		t.Fatal(err)
	}
	return p[0]
}

// probe connects a test client to the cluster; the caller closes nc.
func (c *natsCluster) probe() (*nats.Conn, jetstream.JetStream) {
	c.t.Helper()
	nc := c.connect("probe")
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		c.t.Fatal(err)
	}
	return nc, js
}

// waitCurrent waits until the stream and both buckets have a leader and
// every replica is online and current: the state after which stopping
// any one server leaves a quorum that has every message.
func (c *natsCluster) waitCurrent() {
	c.t.Helper()
	nc, js := c.probe()
	defer nc.Close()
	clustertest.CheckFor(c.t, 60*time.Second, 20*time.Millisecond, func() error {
		for _, name := range []string{roomcluster.StreamName, "KV_" + roomcluster.NodesBucket, "KV_" + roomcluster.OnlineBucket, "KV_" + roomcluster.PresenceBucket} {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			s, err := js.Stream(ctx, name)
			var info *jetstream.StreamInfo
			if err == nil {
				info, err = s.Info(ctx)
			}
			cancel()
			if err != nil {
				return fmt.Errorf("stream %s: %w", name, err)
			}
			cl := info.Cluster
			if cl == nil || cl.Leader == "" {
				return fmt.Errorf("stream %s has no leader", name)
			}
			if len(cl.Replicas) != len(c.servers)-1 {
				return fmt.Errorf("stream %s has %d replicas besides its leader, want %d", name, len(cl.Replicas), len(c.servers)-1)
			}
			for _, r := range cl.Replicas {
				if !r.Current || r.Offline {
					return fmt.Errorf("stream %s: replica %s is not current", name, r.Name)
				}
			}
		}
		return nil
	})
}

// lead makes server i the leader of the stream name (a leader step-down
// with server i preferred, repeated until it holds).
func (c *natsCluster) lead(name string, i int) {
	c.t.Helper()
	nc, js := c.probe()
	defer nc.Close()
	want := fmt.Sprint("nats", i)
	req := fmt.Appendf(nil, `{"placement":{"preferred":%q}}`, want)
	clustertest.CheckFor(c.t, 60*time.Second, 200*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, name)
		if err != nil {
			return err
		}
		info, err := s.Info(ctx)
		if err != nil {
			return err
		}
		if info.Cluster == nil {
			return fmt.Errorf("stream %s has no cluster info", name)
		}
		if l := info.Cluster.Leader; l != want {
			_, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+name, req)
			return fmt.Errorf("stream %s is led by %q, want %s (step-down: %v)", name, l, want, err)
		}
		return nil
	})
}

func (c *natsCluster) stop(i int) {
	c.servers[i].Shutdown()
	c.servers[i].WaitForShutdown()
	c.servers[i] = nil
}

// connect connects to the servers, the first one named first (no
// randomising), reconnecting for ever.
func (c *natsCluster) connect(name string, first ...int) *nats.Conn {
	c.t.Helper()
	var urls []string
	for _, i := range first {
		urls = append(urls, c.servers[i].ClientURL())
	}
	for _, s := range c.servers {
		if s != nil {
			urls = append(urls, s.ClientURL())
		}
	}
	nc, err := nats.Connect(strings.Join(urls, ","), nats.Name(name), nats.DontRandomize(),
		nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		c.t.Fatal(err)
	}
	return nc
}

// gateway is one gateway node: rooms on its HTTP listener, the cluster
// services on its gRPC listener (mTLS).
type gateway struct {
	id     string
	audit  *recorder
	nc     *nats.Conn
	node   *roomcluster.Node
	svc    *rooms.Service
	url    string
	client clientv1connect.ClientServiceClient
	grpc   string
	stop   func()
}

type cluster struct {
	t      testing.TB
	nats   *natsCluster
	st     *store.Store
	certs  *certs.Bundle
	gws    []*gateway
	n      atomic.Int64
	client *tls.Config
}

func newCluster(t testing.TB, st *store.Store, gateways int) *cluster {
	t.Helper()
	b, err := certs.Init(filepath.Join(t.TempDir(), "certs"), certs.InitOptions{Game: "rooms", Env: "test"})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := tlsconf.ClientConfig(b.CACert, b.ClientCert, b.ClientKey, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, nats: startNATS(t, 3), st: st, certs: b, client: cc}
	for i := range gateways {
		c.gws = append(c.gws, c.startGateway(fmt.Sprint("gw", i), i%3))
	}
	c.nats.waitCurrent()
	return c
}

func (c *cluster) startGateway(id string, natsServer int) *gateway {
	t := c.t
	t.Helper()
	g := &gateway{id: id, nc: c.nats.connect(id, natsServer), audit: &recorder{}}
	ctx := ctxT(t)
	grpcLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.grpc = grpcLn.Addr().String()
	g.node, err = roomcluster.New(ctx, roomcluster.Config{Conn: g.nc, NodeID: id, Address: g.grpc,
		// Room of two raft elections (4–9 s each) on a loaded machine.
		PublishTimeout: 30 * time.Second,
		Heartbeat:      testHeartbeat, DeadAfter: testDeadAfter, Replicas: 3, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	g.svc, err = rooms.New(ctx, rooms.Config{Store: c.st, Argon2: fastArgon, Bus: g.node, StreamQueue: 4096, ControlPerSecond: 1000,
		SignupsPerMinute: 1e6, SignupBurst: 1e6,
		ChatPerSecond: 1000}) // the tests send bursts of chat; rate limits are tested in internal/rooms
	if err != nil {
		t.Fatal(err)
	}
	if err := g.node.Start(ctx, g.svc, g.audit); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	roomsrpc.Mount(mux, g.svc, roomsrpc.Options{})
	srv, err := roomsrpc.Listen(roomsrpc.ServerConfig{Addr: "127.0.0.1:0"}, mux)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	tc, err := tlsconf.ServerConfig(c.certs.CACert, c.certs.ServerCert, c.certs.ServerKey, true)
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(tc)))
	g.node.Register(gs)
	gserved := make(chan error, 1)
	go func() { gserved <- gs.Serve(grpcLn) }()
	hc := h2cClient()
	g.url = srv.URL()
	g.client = clientv1connect.NewClientServiceClient(hc, srv.URL(), connect.WithGRPC())
	stopped := false
	g.stop = func() {
		if stopped {
			return
		}
		stopped = true
		g.svc.Close() // streams end with UNAVAILABLE: members reconnect elsewhere
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-served
		gs.Stop()
		<-gserved
		g.node.Close()
		g.nc.Close()
		hc.CloseIdleConnections()
	}
	t.Cleanup(g.stop)
	return g
}

func h2cClient() *http.Client {
	tr := &http.Transport{}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: tr}
}

// dial is a node-to-node gRPC connection to g with the CA's client
// certificate.
func (c *cluster) dial(g *gateway) (clusterv1.ClusterServiceClient, datav1.DataSyncServiceClient) {
	c.t.Helper()
	conn, err := grpc.NewClient(g.grpc, grpc.WithTransportCredentials(credentials.NewTLS(c.client)))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { _ = conn.Close() })
	return clusterv1.NewClusterServiceClient(conn), datav1.NewDataSyncServiceClient(conn)
}

type player struct{ id, name, token string }

func as[T any](p player, msg *T) *connect.Request[T] {
	r := connect.NewRequest(msg)
	r.Header().Set("Authorization", "Bearer "+p.token)
	return r
}

func (c *cluster) register(g *gateway) player {
	c.t.Helper()
	name := fmt.Sprint("p", c.n.Add(1))
	resp, err := g.client.Register(ctxT(c.t), connect.NewRequest(&clientv1.RegisterRequest{Username: name, Password: "password-" + name}))
	if err != nil {
		c.t.Fatalf("register %s: %v", name, err)
	}
	return player{id: resp.Msg.GetUser().GetId(), name: name, token: resp.Msg.GetAccessToken()}
}

// roomWithMovie: owner creates a room on g, makes a movie current, and
// members join it.
func (c *cluster) roomWithMovie(g *gateway, owner player, members ...player) string {
	c.t.Helper()
	ctx := ctxT(c.t)
	r, err := g.client.CreateRoom(ctx, as(owner, &clientv1.CreateRoomRequest{Name: "room", Settings: &clientv1.RoomSettings{
		DefaultPermissions: uint64(clientv1.Permission_PERMISSION_CHAT | clientv1.Permission_PERMISSION_CONTROL_PLAYBACK)}}))
	if err != nil {
		c.t.Fatal(err)
	}
	id := r.Msg.GetRoom().GetId()
	mv, err := g.client.AddMovie(ctx, as(owner, &clientv1.AddMovieRequest{RoomId: id, Url: "https://example.com/a.mp4"}))
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := g.client.SetCurrentMovie(ctx, as(owner, &clientv1.SetCurrentMovieRequest{RoomId: id, MovieId: mv.Msg.GetMovie().GetId()})); err != nil {
		c.t.Fatal(err)
	}
	for _, m := range members {
		if _, err := g.client.JoinRoom(ctx, as(m, &clientv1.JoinRoomRequest{RoomId: id})); err != nil {
			c.t.Fatal(err)
		}
	}
	return id
}

// stream is an open MessageStream with a background reader.
type stream struct {
	t      testing.TB
	bs     *connect.BidiStreamForClient[clientv1.ClientMessage, clientv1.ServerMessage]
	msgs   chan *clientv1.ServerMessage
	end    chan error
	cancel context.CancelFunc
	last   atomic.Int64 // highest seq received
}

func openStream(t testing.TB, g *gateway, p player, room string, after int64) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	bs := g.client.MessageStream(ctx)
	bs.RequestHeader().Set("Authorization", "Bearer "+p.token)
	if err := bs.Send(&clientv1.ClientMessage{Payload: &clientv1.ClientMessage_Hello{Hello: &clientv1.StreamHello{RoomId: room, AfterSeq: after}}}); err != nil {
		t.Fatalf("hello: %v", err)
	}
	s := &stream{t: t, bs: bs, msgs: make(chan *clientv1.ServerMessage, 20000), end: make(chan error, 1), cancel: cancel}
	go func() {
		for {
			m, err := bs.Receive()
			if err != nil {
				s.end <- err
				close(s.msgs)
				return
			}
			if m.GetSeq() > s.last.Load() {
				s.last.Store(m.GetSeq())
			}
			s.msgs <- m
		}
	}()
	t.Cleanup(s.close)
	s.next(isReady)
	return s
}

func (s *stream) close() {
	s.cancel()
	_ = s.bs.CloseRequest()
	for range s.msgs { //nolint:revive // drain until the reader ends
	}
}

func (s *stream) send(m *clientv1.ClientMessage) {
	s.t.Helper()
	if err := s.bs.Send(m); err != nil {
		s.t.Fatalf("send: %v", err)
	}
}

// next returns the next message that matches, skipping others, within 20s.
func (s *stream) next(match func(*clientv1.ServerMessage) bool) *clientv1.ServerMessage {
	s.t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case m, ok := <-s.msgs:
			if !ok {
				s.t.Fatalf("stream ended: %v", <-s.end)
			}
			if match(m) {
				return m
			}
		case <-timeout:
			s.t.Fatal("no matching message within 20s")
		}
	}
}

// ended waits for the stream to end and returns its error message.
func (s *stream) ended() *clientv1.ErrorMessage {
	s.t.Helper()
	timeout := time.After(20 * time.Second)
	var last *clientv1.ErrorMessage
	for {
		select {
		case m, ok := <-s.msgs:
			if !ok {
				return last
			}
			if m.GetError() != nil {
				last = m.GetError()
			}
		case <-timeout:
			s.t.Fatal("stream did not end within 20s")
		}
	}
}

func isReady(m *clientv1.ServerMessage) bool { return m.GetReady() != nil }
func isChat(m *clientv1.ServerMessage) bool  { return m.GetChat() != nil }

func stateAt(pos float64) func(m *clientv1.ServerMessage) bool {
	return func(m *clientv1.ServerMessage) bool {
		return m.GetRoomState() != nil && m.GetRoomState().GetState().GetPosition() == pos
	}
}

func chatMsg(text string) *clientv1.ClientMessage {
	return &clientv1.ClientMessage{Payload: &clientv1.ClientMessage_Chat{Chat: &clientv1.ChatMessage{Content: text}}}
}

// recorder keeps the audit entries a node records.
type recorder struct {
	mu      sync.Mutex
	entries []audit.Entry
}

func (r *recorder) Record(_ context.Context, e audit.Entry) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.entries = append(r.entries, e)
	return nil
}

func (r *recorder) all() []audit.Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.entries)
}
