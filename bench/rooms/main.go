// Command rooms benchmarks the rooms system's live fan-out (docs/rooms.md):
// one room with N members, each on its own MessageStream (gRPC over h2c,
// one connection per member, as real clients have), all in this process
// but over real loopback sockets, with the service on a SQLite file.
//
//	go run ./bench/rooms [-members 1000] [-seeks 100] [-senders 50] [-chat 10] [-transport grpc|ws] [-tier both|on|off]
//
// -transport ws puts every member on the WebSocket fallback (HTTP/1.1, one
// connection each) instead of gRPC.
//
// (a) seek → room_state: the room's creator calls Seek; the time until the
// last member has the new room_state, per seek (p50/p99 over -seeks), and
// over all deliveries. Baseline in the same run: a room with one member.
// (b) chat: -senders members each send -chat messages at once (within the
// per-user limit); delivered messages/s until every member has them all.
// Baseline in the same run: the same senders in a room of 100 members.
//
// -tier runs the phases on the rooms system alone ("off": events
// delivered where they happen, seqs reserved in the database) and/or as a
// one-node gateway tier ("on": the default of `croupier gateway` and
// `croupier dev` — an embedded NATS with JetStream files in a temporary
// directory, every event appended to the room log and delivered from it);
// "both" (the default) runs off, then on, in the same process: the
// baseline of the log's cost.
//
// Each phase also reports the process's CPU time (getrusage: the service and
// the in-process clients together) per delivery, which the machine's load
// barely changes. -cpuprofile profiles the phases of the large room.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"github.com/coder/websocket"
	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"github.com/croupier/croupier/api/synctv/client/v1/clientv1connect"
	"github.com/croupier/croupier/internal/audit"
	"github.com/croupier/croupier/internal/auth"
	"github.com/croupier/croupier/internal/cluster"
	"github.com/croupier/croupier/internal/roomcluster"
	"github.com/croupier/croupier/internal/rooms"
	"github.com/croupier/croupier/internal/rooms/roomsrpc"
	"github.com/croupier/croupier/internal/store"
	"google.golang.org/protobuf/proto"
)

func main() {
	members := flag.Int("members", 1000, "members of the measured room")
	seeks := flag.Int("seeks", 100, "seeks to time")
	senders := flag.Int("senders", 50, "members that send chat")
	chat := flag.Int("chat", 10, "chat messages per sender (at most 10: the per-user limit per second)")
	seekProfile := flag.String("cpuprofile", "", "write a CPU profile of the large room's seeks to this file")
	chatProfile := flag.String("chatprofile", "", "write a CPU profile of the large room's chat to this file")
	transport := flag.String("transport", "grpc", "members' MessageStream transport: grpc or ws (the WebSocket fallback)")
	tier := flag.String("tier", "both", "rooms alone (off), as a one-node gateway tier on an embedded NATS (on), or off then on (both); profiles cover the last")
	flag.Parse()
	if *transport != "grpc" && *transport != "ws" {
		fmt.Fprintln(os.Stderr, "bench/rooms: -transport is grpc or ws")
		os.Exit(2)
	}
	modes := map[string][]bool{"off": {false}, "on": {true}, "both": {false, true}}[*tier]
	if modes == nil {
		fmt.Fprintln(os.Stderr, "bench/rooms: -tier is off, on or both")
		os.Exit(2)
	}
	if err := run(*members, *seeks, *senders, *chat, *transport == "ws", modes, profiles{*seekProfile, *chatProfile}); err != nil {
		fmt.Fprintln(os.Stderr, "bench/rooms:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

type bench struct {
	svc *rooms.Service
	url string
	// ws: members use the WebSocket fallback instead of gRPC.
	ws bool
}

// cpuTime is the CPU time (user + system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// perDelivery formats CPU time spent per delivery.
func perDelivery(cpu time.Duration, deliveries int) string {
	return fmt.Sprintf("%.1f µs CPU/delivery", float64(cpu.Microseconds())/float64(max(deliveries, 1)))
}

func run(members, seeks, senders, chat int, ws bool, modes []bool, prof profiles) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "bench-rooms-")
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
	for i, tier := range modes {
		p := profiles{}
		if i == len(modes)-1 {
			p = prof
		}
		if err := runMode(ctx, st, filepath.Join(dir, fmt.Sprint("nats", i)), tier, members, seeks, senders, chat, ws, p); err != nil {
			return err
		}
	}
	return nil
}

// runMode runs the phases on one rooms system: alone, or (tier) as a
// one-node gateway tier on an embedded NATS with its files in natsDir.
func runMode(ctx context.Context, st *store.Store, natsDir string, tier bool, members, seeks, senders, chat int, ws bool, prof profiles) error {
	// Cheap password hashes and no limit on seeks or sign-ups: the bench
	// measures fan-out, not logins or the rate limits (its 1,000 members
	// sign up from one address).
	rcfg := rooms.Config{Store: st, Argon2: auth.Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		StreamQueue: 4096, ControlPerSecond: 1e9, SignupsPerMinute: 1e9, SignupBurst: 1e9}
	var node *roomcluster.Node
	if tier {
		quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		nb, err := cluster.Start(ctx, cluster.Config{NodeID: "bench", DataDir: natsDir, MembersBucket: "croupier_gateways", Logger: quiet})
		if err != nil {
			return err
		}
		defer nb.Close()
		if node, err = roomcluster.New(ctx, roomcluster.Config{Conn: nb.Conn(), NodeID: nb.ID(), Logger: quiet}); err != nil {
			return err
		}
		defer node.Close() // before the bus closes (defers run last first)
		rcfg.Bus = node
		fmt.Println("== one-node gateway tier: embedded NATS, every event through the room log (JetStream, file storage)")
	} else {
		fmt.Println("== rooms alone: no NATS, events delivered where they happen (baseline)")
	}
	svc, err := rooms.New(ctx, rcfg)
	if err != nil {
		return err
	}
	defer svc.Close()
	if node != nil {
		if err := node.Start(ctx, svc, noAudit{}); err != nil {
			return err
		}
	}
	mux := http.NewServeMux()
	roomsrpc.Mount(mux, svc, roomsrpc.Options{})
	srv, err := roomsrpc.Listen(roomsrpc.ServerConfig{Addr: "127.0.0.1:0"}, mux)
	if err != nil {
		return err
	}
	go func() { _ = srv.Serve() }()
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	b := &bench{svc: svc, url: srv.URL(), ws: ws}

	fmt.Printf("seek → room_state, %d seeks\n", seeks)
	for _, n := range []int{1, members} {
		r, err := b.settledRoom(ctx, n)
		if err != nil {
			return err
		}
		if n == members {
			if err := profile(prof.seek); err != nil {
				return err
			}
		}
		c0 := cpuTime()
		last, all, err := r.seeks(ctx, seeks)
		cpu := cpuTime() - c0
		pprof.StopCPUProfile()
		if err != nil {
			return err
		}
		fmt.Printf("  %5d members: last member p50 %-9s p99 %-9s | all deliveries p50 %-9s p99 %-9s | %s\n",
			n, pct(last, 50), pct(last, 99), pct(all, 50), pct(all, 99), perDelivery(cpu, len(all)))
		r.close()
	}
	fmt.Printf("chat, %d senders × %d messages\n", senders, chat)
	for _, n := range []int{100, members} {
		r, err := b.settledRoom(ctx, n)
		if err != nil {
			return err
		}
		if n == members {
			if err := profile(prof.chat); err != nil {
				return err
			}
		}
		c0 := cpuTime()
		rate, elapsed, err := r.chat(ctx, min(senders, n), chat)
		cpu := cpuTime() - c0
		pprof.StopCPUProfile()
		if err != nil {
			return err
		}
		fmt.Printf("  %5d members: %d messages to every member in %s: %.0f delivered messages/s | %s\n",
			n, min(senders, n)*chat, elapsed.Round(time.Millisecond), rate, perDelivery(cpu, min(senders, n)*chat*n))
		r.close()
	}
	return nil
}

// profiles are the CPU profile files of the large room's phases ("": none).
type profiles struct{ seek, chat string }

// profile starts a CPU profile into path (none if path is empty); the
// caller stops it with pprof.StopCPUProfile.
func profile(path string) error {
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	// The profile is written when stopped; the file stays open until exit.
	return pprof.StartCPUProfile(f)
}

// room is a room with its creator (an RPC client) and n members on streams.
type room struct {
	id      string
	creator clientv1connect.ClientServiceClient
	token   string
	members []*member
	cancel  context.CancelFunc
}

type member struct {
	conn stream
	// events delivers what the member receives, stamped on arrival.
	events chan event
}

// stream is a member's MessageStream over one transport.
type stream struct {
	send  func(*clientv1.ClientMessage) error
	recv  func() (*clientv1.ServerMessage, error)
	close func()
}

// dialGRPC opens a member's stream over gRPC on its own HTTP/2 connection.
func dialGRPC(ctx context.Context, url, token string) stream {
	hc := h2c()
	bs := clientv1connect.NewClientServiceClient(hc, url, connect.WithGRPC()).MessageStream(ctx)
	bs.RequestHeader().Set("Authorization", "Bearer "+token)
	return stream{send: bs.Send, recv: bs.Receive, close: func() {
		_ = bs.CloseRequest()
		_ = bs.CloseResponse()
		hc.CloseIdleConnections()
	}}
}

// dialWS opens a member's stream over the WebSocket fallback.
func dialWS(ctx context.Context, url, token string) (stream, error) {
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http")+roomsrpc.WebSocketPath,
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
	if err != nil {
		return stream{}, err
	}
	c.SetReadLimit(4 << 20)
	return stream{
		send: func(m *clientv1.ClientMessage) error {
			b, err := proto.Marshal(m)
			if err != nil {
				return err
			}
			return c.Write(ctx, websocket.MessageBinary, b)
		},
		recv: func() (*clientv1.ServerMessage, error) {
			_, b, err := c.Read(ctx)
			if err != nil {
				return nil, err
			}
			m := &clientv1.ServerMessage{}
			return m, proto.Unmarshal(b, m)
		},
		close: func() { _ = c.CloseNow() },
	}, nil
}

type event struct {
	at  time.Time
	msg *clientv1.ServerMessage
}

func h2c() *http.Client {
	tr := &http.Transport{}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: tr}
}

func (b *bench) room(ctx context.Context, n int) (*room, error) {
	c := clientv1connect.NewClientServiceClient(h2c(), b.url)
	reg, err := c.Register(ctx, connect.NewRequest(&clientv1.RegisterRequest{Username: fmt.Sprintf("host%d", time.Now().UnixNano()), Password: "bench-password"}))
	if err != nil {
		return nil, err
	}
	tok := reg.Msg.GetAccessToken()
	cr := connect.NewRequest(&clientv1.CreateRoomRequest{Name: fmt.Sprintf("bench %d", n), Settings: &clientv1.RoomSettings{AllowGuests: true}})
	cr.Header().Set("Authorization", "Bearer "+tok)
	created, err := c.CreateRoom(ctx, cr)
	if err != nil {
		return nil, err
	}
	id := created.Msg.GetRoom().GetId()
	am := connect.NewRequest(&clientv1.AddMovieRequest{RoomId: id, Url: "https://example.com/bench.mp4"})
	am.Header().Set("Authorization", "Bearer "+tok)
	mv, err := c.AddMovie(ctx, am)
	if err != nil {
		return nil, err
	}
	sc := connect.NewRequest(&clientv1.SetCurrentMovieRequest{RoomId: id, MovieId: mv.Msg.GetMovie().GetId()})
	sc.Header().Set("Authorization", "Bearer "+tok)
	if _, err := c.SetCurrentMovie(ctx, sc); err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	r := &room{id: id, creator: c, token: tok, cancel: cancel}
	for i := 0; i < n; i++ {
		g, err := c.GuestJoin(ctx, connect.NewRequest(&clientv1.GuestJoinRequest{RoomId: id, Name: fmt.Sprintf("m%d", i)}))
		if err != nil {
			return nil, err
		}
		bs := dialGRPC(sctx, b.url, g.Msg.GetAccessToken())
		if b.ws {
			if bs, err = dialWS(sctx, b.url, g.Msg.GetAccessToken()); err != nil {
				return nil, err
			}
		}
		if err := bs.send(&clientv1.ClientMessage{Payload: &clientv1.ClientMessage_Hello{Hello: &clientv1.StreamHello{RoomId: id}}}); err != nil {
			return nil, err
		}
		for {
			m, err := bs.recv()
			if err != nil {
				return nil, fmt.Errorf("member %d: %w", i, err)
			}
			if m.GetReady() != nil {
				break
			}
		}
		m := &member{conn: bs, events: make(chan event, 8192)}
		go func() {
			defer close(m.events)
			for {
				msg, err := bs.recv()
				if err != nil {
					return
				}
				if msg.GetRoomState() != nil || msg.GetChat() != nil {
					m.events <- event{at: time.Now(), msg: msg}
				}
			}
		}()
		r.members = append(r.members, m)
	}
	return r, nil
}

// settledRoom is room after one untimed seek that every member received:
// with the gateway tier the members' joins (and the previous room's
// leaves) are delivered from the log after their calls return, so the
// measured phase starts once that backlog is through, as without it.
func (b *bench) settledRoom(ctx context.Context, n int) (*room, error) {
	r, err := b.room(ctx, n)
	if err != nil {
		return nil, err
	}
	if _, _, err := r.seeks(ctx, 1); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

func (r *room) close() {
	r.cancel()
	for _, m := range r.members {
		m.conn.close()
		for range m.events { //nolint:revive // drain until the reader ends
		}
	}
}

// seeks times n seeks; it returns, per seek, the time until the last member
// had the new state, and every member's delivery time.
func (r *room) seeks(ctx context.Context, n int) (last, all []time.Duration, err error) {
	for i := 0; i < n; i++ {
		req := connect.NewRequest(&clientv1.SeekRequest{RoomId: r.id, Position: float64(i)})
		req.Header().Set("Authorization", "Bearer "+r.token)
		t0 := time.Now()
		resp, err := r.creator.Seek(ctx, req)
		if err != nil {
			return nil, nil, err
		}
		v := resp.Msg.GetState().GetVersion()
		var worst time.Duration
		for _, m := range r.members {
			for ev := range m.events {
				if s := ev.msg.GetRoomState(); s != nil && s.GetState().GetVersion() == v {
					d := ev.at.Sub(t0)
					all = append(all, d)
					worst = max(worst, d)
					break
				}
			}
		}
		last = append(last, worst)
	}
	return last, all, nil
}

// chat has the first senders members send k messages each at once and
// waits until every member has all of them.
func (r *room) chat(ctx context.Context, senders, k int) (float64, time.Duration, error) {
	want := senders * k
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := 0; i < senders; i++ {
		wg.Add(1)
		go func(m *member) {
			defer wg.Done()
			for j := 0; j < k; j++ {
				_ = m.conn.send(&clientv1.ClientMessage{Payload: &clientv1.ClientMessage_Chat{Chat: &clientv1.ChatMessage{Content: "bench message"}}})
			}
		}(r.members[i])
	}
	var done sync.WaitGroup
	for _, m := range r.members {
		done.Add(1)
		go func(m *member) {
			defer done.Done()
			got := 0
			for ev := range m.events {
				if ev.msg.GetChat() != nil {
					if got++; got == want {
						return
					}
				}
			}
		}(m)
	}
	wg.Wait()
	finished := make(chan struct{})
	go func() { done.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(5 * time.Minute):
		return 0, 0, fmt.Errorf("chat: not every member had %d messages after 5 minutes", want)
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	elapsed := time.Since(t0)
	return float64(want*len(r.members)) / elapsed.Seconds(), elapsed, nil
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
