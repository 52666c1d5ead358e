package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/api/tencentcloud/gse/grpcsdk"
	"github.com/croupier/croupier/internal/fleet"
	"github.com/croupier/croupier/internal/gse"
	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/store/storetest"
)

// The benchmarks run the whole fleet plane in one process: the fleet
// service on a real store, a real agent (GSE endpoint, tunnel commands via
// LocalDispatcher), and benchProcesses in-process game servers that speak
// the raw GSE protos over loopback gRPC with fake pids.
//
//	go test -run '^$' -bench . -benchtime 2000x ./internal/fleet/
const benchProcesses = 50

const benchPIDBase = 3_900_000

type benchGame struct {
	grpcsdk.UnimplementedGameServerGrpcSdkServiceServer
	pid   int
	gse   grpcsdk.GseGrpcSdkServiceClient
	onAct func(id string, g *benchGame)
}

// fakeCaller is the agent's CallerCheck for games that are this test
// process under fake pids (internal/gse tests the real check).
func fakeCaller(_, _ net.Addr, pid int) error {
	if pid < benchPIDBase {
		return errors.New("not a fake pid")
	}
	return nil
}

func (g *benchGame) ctx() (context.Context, context.CancelFunc) {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	return metadata.AppendToOutgoingContext(c, "pid", strconv.Itoa(g.pid), "requestId", newRequestID()), cancel
}

var benchReq atomic.Int64

func newRequestID() string { return "bench-" + strconv.FormatInt(benchReq.Add(1), 10) }

func (g *benchGame) OnHealthCheck(context.Context, *grpcsdk.HealthCheckRequest) (*grpcsdk.HealthCheckResponse, error) {
	return &grpcsdk.HealthCheckResponse{HealthStatus: true}, nil
}

// OnStartGameServerSession activates from inside the callback, as GSE's
// sample does.
func (g *benchGame) OnStartGameServerSession(_ context.Context, req *grpcsdk.StartGameServerSessionRequest) (*grpcsdk.GseResponse, error) {
	s := req.GetGameServerSession()
	c, cancel := g.ctx()
	defer cancel()
	resp, err := g.gse.ActivateGameServerSession(c, &grpcsdk.ActivateGameServerSessionRequest{GameServerSessionId: s.GetGameServerSessionId(), MaxPlayers: s.GetMaxPlayers()})
	if err == nil && resp.GetStatus() == grpcsdk.GseResponse_OK && g.onAct != nil {
		g.onAct(s.GetGameServerSessionId(), g)
	}
	return resp, err
}

type benchEnv struct {
	svc   *fleet.Service
	games []*benchGame
	// activated delivers, per session id, when and where it became ACTIVE.
	mu        sync.Mutex
	activated map[string]chan activation
}

type activation struct {
	at   time.Time
	game *benchGame
}

func newBenchEnv(b *testing.B, driver string) *benchEnv {
	b.Helper()
	st := storetest.Open(b, driver, storetest.WithMaxOpenConns(16))
	disp := fleet.NewLocalDispatcher()
	svc, err := fleet.New(fleet.Config{Store: st, Agents: disp})
	if err != nil {
		b.Fatal(err)
	}
	svc.Start()
	b.Cleanup(svc.Close)
	ctx := context.Background()
	if err := st.Scopes().Declare(ctx, "g", "prod"); err != nil {
		b.Fatal(err)
	}
	if _, err := svc.CreateFleet(ctx, &croupierv1.Fleet{FleetId: "bench", GameId: "g", Env: "prod"}); err != nil {
		b.Fatal(err)
	}
	agent, err := gse.New(gse.Config{AgentID: "a1", GameID: "g", Env: "prod", Addr: "127.0.0.1:0",
		DataDir: filepath.Join(b.TempDir(), "agent"), IPAddress: "127.0.0.1", Upstream: svc.AgentAPI(), DefaultFleetID: "bench",
		ProcessInfo: func(pid int) (uint64, bool) { return 1, pid >= benchPIDBase },
		CallerCheck: fakeCaller,
		Kill:        func(int, syscall.Signal) error { return nil },
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := agent.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(agent.Close)
	disp.Set("a1", agent)

	e := &benchEnv{svc: svc, activated: map[string]chan activation{}}
	conn, err := grpc.NewClient(agent.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	for i := range benchProcesses {
		g := &benchGame{pid: benchPIDBase + i, gse: grpcsdk.NewGseGrpcSdkServiceClient(conn), onAct: e.onActivated}
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv := grpc.NewServer()
		grpcsdk.RegisterGameServerGrpcSdkServiceServer(srv, g)
		go func() { _ = srv.Serve(lis) }()
		b.Cleanup(srv.Stop)
		c, cancel := g.ctx()
		resp, err := g.gse.ProcessReady(c, &grpcsdk.ProcessReadyRequest{ClientPort: int32(7000 + i), GrpcPort: int32(lis.Addr().(*net.TCPAddr).Port)})
		cancel()
		if err != nil || resp.GetStatus() != grpcsdk.GseResponse_OK {
			b.Fatalf("ProcessReady: %v %v", err, resp)
		}
		e.games = append(e.games, g)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ps, err := svc.ListProcesses(ctx, &croupierv1.ListProcessesRequest{FleetId: "bench", Status: store.ProcessActive})
		if err == nil && len(ps) == benchProcesses {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("only %d processes became ACTIVE", len(ps))
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	return e
}

func (e *benchEnv) onActivated(id string, g *benchGame) {
	e.mu.Lock()
	ch := e.activated[id]
	e.mu.Unlock()
	if ch != nil {
		ch <- activation{at: time.Now(), game: g}
	}
}

func (e *benchEnv) expect(id string) chan activation {
	ch := make(chan activation, 1)
	e.mu.Lock()
	e.activated[id] = ch
	e.mu.Unlock()
	return ch
}

// BenchmarkSessionActivation: 50 workers each create a session, wait for
// the process to activate it (CreateGameServerSession -> placement ->
// StartGameServerSessionCommand -> OnStartGameServerSession ->
// ActivateGameServerSession -> ACTIVE), then let the process end it
// (TerminateGameServerSession) so the process can host the next one.
func BenchmarkSessionActivation(b *testing.B) {
	for _, driver := range []string{store.DriverSQLite, store.DriverPostgres} {
		for _, workers := range []int{1, benchProcesses} {
			b.Run(fmt.Sprintf("%s/workers=%d", driver, workers), func(b *testing.B) { benchActivation(b, driver, workers) })
		}
	}
}

func benchActivation(b *testing.B, driver string, workers int) {
	{
		{
			e := newBenchEnv(b, driver)
			var next atomic.Int64
			lat := make([]time.Duration, b.N)
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						id := fmt.Sprintf("bench-%d-%d", w, i)
						ch := e.expect(id)
						t0 := time.Now()
						_, err := e.svc.CreateGameServerSession(context.Background(), &croupierv1.CreateGameServerSessionRequest{
							FleetId: "bench", MaxPlayers: 10, GameServerSessionId: id})
						if err != nil {
							b.Errorf("create: %v", err)
							return
						}
						var act activation
						select {
						case act = <-ch:
						case <-time.After(30 * time.Second):
							b.Errorf("session %s not activated", id)
							return
						}
						lat[i] = act.at.Sub(t0)
						c, cancel := act.game.ctx()
						resp, err := act.game.gse.TerminateGameServerSession(c, &grpcsdk.TerminateGameServerSessionRequest{GameServerSessionId: id})
						cancel()
						if err != nil || resp.GetStatus() != grpcsdk.GseResponse_OK {
							b.Errorf("end: %v %v", err, resp)
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "sessions/s")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		}
	}
}

// BenchmarkPlayerJoinAccept: 16 workers join players to one ACTIVE session
// (JoinGameServerSession) and accept them as the game server does
// (AcceptPlayerSession through the agent). A session holds 10000 players;
// past that the benchmark moves on to a fresh session.
func BenchmarkPlayerJoinAccept(b *testing.B) {
	for _, driver := range []string{store.DriverSQLite, store.DriverPostgres} {
		b.Run(driver, func(b *testing.B) {
			e := newBenchEnv(b, driver)
			const perSession = fleet.MaxMaxPlayers
			sessions := map[int64]activation{}
			var sessMu sync.Mutex
			session := func(n int64) (string, *benchGame) {
				sessMu.Lock()
				defer sessMu.Unlock()
				id := fmt.Sprintf("players-%d", n)
				if a, ok := sessions[n]; ok {
					return id, a.game
				}
				ch := e.expect(id)
				if _, err := e.svc.CreateGameServerSession(context.Background(), &croupierv1.CreateGameServerSessionRequest{
					FleetId: "bench", MaxPlayers: perSession, GameServerSessionId: id}); err != nil {
					b.Fatalf("create: %v", err)
				}
				a := <-ch
				sessions[n] = a
				return id, a.game
			}
			session(0)
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						id, g := session(i / perSession)
						ps, err := e.svc.JoinGameServerSession(context.Background(), &croupierv1.JoinGameServerSessionRequest{
							GameServerSessionId: id, PlayerId: "p" + strconv.FormatInt(i, 10)})
						if err != nil {
							b.Errorf("join: %v", err)
							return
						}
						c, cancel := g.ctx()
						resp, err := g.gse.AcceptPlayerSession(c, &grpcsdk.AcceptPlayerSessionRequest{GameServerSessionId: id, PlayerSessionId: ps.GetPlayerSessionId()})
						cancel()
						if err != nil || resp.GetStatus() != grpcsdk.GseResponse_OK {
							b.Errorf("accept: %v %v", err, resp)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "join+accept/s")
		})
	}
}
