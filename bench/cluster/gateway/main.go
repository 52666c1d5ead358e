// Command gateway benchmarks the rooms system on three gateway nodes over
// a three-node embedded NATS cluster (docs/cluster.md, "Gateway tier"):
// one room, -members members spread round-robin over the nodes, each on its
// own MessageStream (gRPC over h2c, one connection per member), all in
// this process but over real loopback sockets, on one SQLite file.
//
//	go run ./bench/cluster/gateway [-members 1000] [-seeks 50] [-replicas 3]
//
// Seek → room_state across nodes: the room's creator calls Seek on node A;
// the time until the last member (on any node) has the new room_state, per
// seek (p50/p99 over -seeks), over all deliveries, and over the
// deliveries to members on the other nodes (cross-node). CPU: the
// process's user+system time during the seeks (NATS servers, nodes and
// members all included) per delivered room_state — the figure a loaded
// machine barely changes. Baseline in the same run: the same room on one
// node without NATS (the rooms system as it runs on a single gateway).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"connectrpc.com/connect"
	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"github.com/croupier/croupier/api/synctv/client/v1/clientv1connect"
	"github.com/croupier/croupier/internal/audit"
	"github.com/croupier/croupier/internal/auth"
	"github.com/croupier/croupier/internal/roomcluster"
	"github.com/croupier/croupier/internal/rooms"
	"github.com/croupier/croupier/internal/rooms/roomsrpc"
	"github.com/croupier/croupier/internal/store"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func main() {
	members := flag.Int("members", 1000, "members of the measured room")
	seeks := flag.Int("seeks", 50, "seeks to time")
	replicas := flag.Int("replicas", 3, "replicas of the room event stream (1 to 3)")
	flag.Parse()
	if err := run(*members, *seeks, *replicas); err != nil {
		fmt.Fprintln(os.Stderr, "bench/cluster/gateway:", err)
		os.Exit(1)
	}
}

var cheapArgon = auth.Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func run(members, seeks, replicas int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "bench-clustergw-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	st, err := store.Open(ctx, store.Config{Driver: store.DriverSQLite, DSN: filepath.Join(dir, "rooms.db")})
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return err
	}
	fmt.Printf("seek → room_state, %d members, %d seeks\n", members, seeks)

	// Baseline: one node, no bus.
	one, err := startNode(ctx, st, nil)
	if err != nil {
		return err
	}
	r, err := measure(ctx, []*node{one}, members, seeks)
	one.stop()
	if err != nil {
		return err
	}
	r.print("1 node, no NATS (baseline)")

	servers, err := startNATS(dir, 3)
	if err != nil {
		return err
	}
	defer func() {
		for _, s := range servers {
			s.Shutdown()
		}
	}()
	var urls []string
	for _, s := range servers {
		urls = append(urls, s.ClientURL())
	}
	var nodes []*node
	for i := range 3 {
		// Each node connects to its own NATS server first.
		order := append([]string{urls[i]}, urls...)
		nc, err := nats.Connect(strings.Join(order, ","), nats.DontRandomize())
		if err != nil {
			return err
		}
		defer nc.Close()
		bus, err := roomcluster.New(ctx, roomcluster.Config{Conn: nc, NodeID: fmt.Sprint("gw", i), Replicas: replicas,
			Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
		if err != nil {
			return err
		}
		n, err := startNode(ctx, st, bus)
		if err != nil {
			return err
		}
		defer n.stop()
		nodes = append(nodes, n)
	}
	r, err = measure(ctx, nodes, members, seeks)
	if err != nil {
		return err
	}
	r.print(fmt.Sprintf("3 nodes over NATS (R%d stream)", replicas))
	return nil
}

type result struct {
	last, all, cross []time.Duration
	cpu, wall        time.Duration
}

func (r result) print(name string) {
	fmt.Printf("  %s:\n    last member p50 %-9s p99 %-9s | all deliveries p50 %-9s p99 %-9s | cross-node p50 %-9s p99 %s\n",
		name, pct(r.last, 50), pct(r.last, 99), pct(r.all, 50), pct(r.all, 99), pct(r.cross, 50), pct(r.cross, 99))
	if len(r.all) > 0 {
		fmt.Printf("    CPU %.2fs in %.2fs wall for %d deliveries: %.1f µs per delivered room_state\n",
			r.cpu.Seconds(), r.wall.Seconds(), len(r.all), float64(r.cpu.Microseconds())/float64(len(r.all)))
	}
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startNATS(dir string, n int) ([]*server.Server, error) {
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	var out []*server.Server
	for i := range n {
		var routes []string
		for j, p := range ports {
			if j != i {
				routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
			}
		}
		s, err := server.NewServer(&server.Options{ServerName: fmt.Sprint("nats", i), Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
			JetStream: true, StoreDir: filepath.Join(dir, fmt.Sprint("js", i)),
			Cluster: server.ClusterOpts{Name: "bench", Host: "127.0.0.1", Port: ports[i]}, Routes: server.RoutesFromStr(strings.Join(routes, ","))})
		if err != nil {
			return nil, err
		}
		s.Start()
		if !s.ReadyForConnections(30 * time.Second) {
			return nil, fmt.Errorf("nats server %d not ready", i)
		}
		out = append(out, s)
	}
	nc, err := nats.Connect(out[0].ClientURL())
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	for deadline := time.Now().Add(30 * time.Second); ; {
		actx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := js.AccountInfo(actx)
		cancel()
		if err == nil {
			return out, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("JetStream not ready: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type node struct {
	url  string
	stop func()
}

func startNode(ctx context.Context, st *store.Store, bus *roomcluster.Node) (*node, error) {
	// The bench's members all join from loopback and its creator seeks back
	// to back: the per-address sign-up and per-user playback limits are
	// lifted (the bench measures fan-out).
	cfg := rooms.Config{Store: st, Argon2: cheapArgon, StreamQueue: 4096, ControlPerSecond: 1e9, SignupsPerMinute: 1e9, SignupBurst: 1e9}
	if bus != nil {
		cfg.Bus = bus
	}
	svc, err := rooms.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if bus != nil {
		if err := bus.Start(ctx, svc, noAudit{}); err != nil {
			return nil, err
		}
	}
	mux := http.NewServeMux()
	roomsrpc.Mount(mux, svc, roomsrpc.Options{})
	srv, err := roomsrpc.Listen(roomsrpc.ServerConfig{Addr: "127.0.0.1:0"}, mux)
	if err != nil {
		return nil, err
	}
	go func() { _ = srv.Serve() }()
	return &node{url: srv.URL(), stop: func() {
		svc.Close()
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		if bus != nil {
			bus.Close()
		}
	}}, nil
}

func h2c() *http.Client {
	tr := &http.Transport{}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: tr}
}

type event struct {
	at      time.Time
	version int64
}

// measure creates a room on nodes[0], puts n guest members on streams
// round-robin over nodes, and times seeks made on nodes[0].
func measure(ctx context.Context, nodes []*node, n, seeks int) (r result, err error) {
	c := clientv1connect.NewClientServiceClient(h2c(), nodes[0].url)
	auth := func(r interface{ Header() http.Header }, tok string) { r.Header().Set("Authorization", "Bearer "+tok) }
	reg, err := c.Register(ctx, connect.NewRequest(&clientv1.RegisterRequest{Username: fmt.Sprintf("host%d", time.Now().UnixNano()), Password: "bench-password"}))
	if err != nil {
		return r, err
	}
	tok := reg.Msg.GetAccessToken()
	cr := connect.NewRequest(&clientv1.CreateRoomRequest{Name: "bench", Settings: &clientv1.RoomSettings{AllowGuests: true}})
	auth(cr, tok)
	created, err := c.CreateRoom(ctx, cr)
	if err != nil {
		return r, err
	}
	id := created.Msg.GetRoom().GetId()
	am := connect.NewRequest(&clientv1.AddMovieRequest{RoomId: id, Url: "https://example.com/bench.mp4"})
	auth(am, tok)
	mv, err := c.AddMovie(ctx, am)
	if err != nil {
		return r, err
	}
	sc := connect.NewRequest(&clientv1.SetCurrentMovieRequest{RoomId: id, MovieId: mv.Msg.GetMovie().GetId()})
	auth(sc, tok)
	if _, err := c.SetCurrentMovie(ctx, sc); err != nil {
		return r, err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var streams []chan event
	for i := range n {
		g, err := c.GuestJoin(ctx, connect.NewRequest(&clientv1.GuestJoinRequest{RoomId: id, Name: fmt.Sprintf("m%d", i)}))
		if err != nil {
			return r, err
		}
		hc := h2c()
		defer hc.CloseIdleConnections()
		bs := clientv1connect.NewClientServiceClient(hc, nodes[i%len(nodes)].url, connect.WithGRPC()).MessageStream(sctx)
		bs.RequestHeader().Set("Authorization", "Bearer "+g.Msg.GetAccessToken())
		if err := bs.Send(&clientv1.ClientMessage{Payload: &clientv1.ClientMessage_Hello{Hello: &clientv1.StreamHello{RoomId: id}}}); err != nil {
			return r, err
		}
		for {
			m, err := bs.Receive()
			if err != nil {
				return r, fmt.Errorf("member %d: %w", i, err)
			}
			if m.GetReady() != nil {
				break
			}
		}
		ch := make(chan event, 4096)
		go func() {
			defer close(ch)
			for {
				msg, err := bs.Receive()
				if err != nil {
					return
				}
				if s := msg.GetRoomState(); s != nil {
					ch <- event{at: time.Now(), version: s.GetState().GetVersion()}
				}
			}
		}()
		streams = append(streams, ch)
	}
	cpu0, wall0 := cpuTime(), time.Now()
	for i := range seeks {
		req := connect.NewRequest(&clientv1.SeekRequest{RoomId: id, Position: float64(i)})
		auth(req, tok)
		t0 := time.Now()
		resp, err := c.Seek(ctx, req)
		if err != nil {
			return r, err
		}
		v := resp.Msg.GetState().GetVersion()
		var worst time.Duration
		for j, ch := range streams {
			for ev := range ch {
				if ev.version == v {
					d := ev.at.Sub(t0)
					r.all = append(r.all, d)
					if j%len(nodes) != 0 { // members round-robin: j%len is the member's node
						r.cross = append(r.cross, d)
					}
					worst = max(worst, d)
					break
				}
			}
		}
		r.last = append(r.last, worst)
	}
	r.cpu, r.wall = cpuTime()-cpu0, time.Since(wall0)
	return r, nil
}

func pct(d []time.Duration, p int) string {
	if len(d) == 0 {
		return "-"
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := min(len(s)-1, (len(s)*p+99)/100-1)
	return s[max(i, 0)].Round(10 * time.Microsecond).String()
}

// noAudit drops the audit entries of node playback changes: the benchmark
// measures the rooms, not the audit log.
type noAudit struct{}

func (noAudit) Record(context.Context, audit.Entry) error { return nil }
