package gse_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
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

// gsegameBin is examples/gsegame built once for the package's tests.
var gsegameBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gsegame-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	gsegameBin = filepath.Join(dir, "gsegame")
	out, err := exec.Command("go", "build", "-o", gsegameBin, "github.com/croupier/croupier/examples/gsegame").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building examples/gsegame: %v\n%s", err, out)
		os.Exit(2)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// pids fakes /proc for in-process "processes": pids at or above fakeBase
// are alive until killed; real pids are read from /proc.
type pids struct {
	mu     sync.Mutex
	dead   map[int]bool
	owners map[string]int // a fake game's connection (its local address) → its pid
	reused map[int]uint64 // how often a fake pid was reused (its start time)
	next   atomic.Int32
}

const fakeBase = 3_000_000

func newPIDs() *pids {
	return &pids{dead: map[int]bool{}, owners: map[string]int{}, reused: map[int]uint64{}}
}

// reuse ends fake pid's process and gives the pid to a new one, which holds
// none of the old one's connections.
func (p *pids) reuse(pid int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reused[pid]++
	for addr, owner := range p.owners {
		if owner == pid {
			delete(p.owners, addr)
		}
	}
}

// own records that the fake game pid holds the connection whose local end
// is addr, as /proc would show it.
func (p *pids) own(addr string, pid int) {
	p.mu.Lock()
	p.owners[addr] = pid
	p.mu.Unlock()
}

// caller is the agent's CallerCheck: a fake pid must own the connection
// (own), a real pid is checked in /proc as in production.
func (p *pids) caller(client, server net.Addr, pid int) error {
	if pid < fakeBase {
		return gse.CheckSocketOwner(client, server, pid)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.owners[client.String()] != pid {
		return fmt.Errorf("pid %d does not hold the connection the call came on", pid)
	}
	return nil
}

func (p *pids) alloc() int { return fakeBase + int(p.next.Add(1)) }

func (p *pids) kill(pid int) {
	p.mu.Lock()
	p.dead[pid] = true
	p.mu.Unlock()
}

// signal is the agent's Kill: fake pids die, real ones get the signal.
func (p *pids) signal(pid int, sig syscall.Signal) error {
	if abs := max(pid, -pid); abs >= fakeBase {
		p.kill(abs)
		return nil
	}
	return syscall.Kill(pid, sig)
}

func (p *pids) info(pid int) (uint64, bool) {
	if pid < fakeBase {
		return gse.ReadProcessInfo(pid)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return 1 + p.reused[pid], !p.dead[pid]
}

type env struct {
	t       *testing.T
	st      *store.Store
	svc     *fleet.Service
	disp    *fleet.LocalDispatcher
	pids    *pids
	dataDir string
	// gameDir is a build directory of the agents besides gsegameBin's, for
	// the games' log files.
	gameDir string
	// healthTimeout is the agents' HealthTimeout: long by default, so a
	// check slowed by a loaded machine never counts as a failure (three in
	// a row made a process unhealthy and the next placement found no
	// capacity); tests of timeouts set it short.
	healthTimeout time.Duration
}

// newEnv starts a fleet service on SQLite with scope g/prod declared.
func newEnv(t *testing.T) *env {
	t.Helper()
	st := storetest.SQLite(t)
	disp := fleet.NewLocalDispatcher()
	svc, err := fleet.New(fleet.Config{Store: st, Agents: disp, SweepInterval: 10 * time.Millisecond, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	svc.Start()
	t.Cleanup(svc.Close)
	if err := st.Scopes().Declare(ctx(t), "g", "prod"); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, st: st, svc: svc, disp: disp, pids: newPIDs(), dataDir: t.TempDir(), gameDir: t.TempDir(), healthTimeout: 10 * time.Second}
}

// config is an agent configuration with short timeouts for tests.
func (e *env) config(id string) gse.Config {
	return gse.Config{
		AgentID: id, GameID: "g", Env: "prod", Addr: "127.0.0.1:0", DataDir: filepath.Join(e.dataDir, id), BuildDirs: []string{filepath.Dir(gsegameBin), e.gameDir},
		IPAddress: "127.0.0.1", Upstream: e.svc.AgentAPI(), ProcessInfo: e.pids.info, Kill: e.pids.signal, CallerCheck: e.pids.caller, Logger: testLogger(),
		HealthInterval: 20 * time.Millisecond, HealthTimeout: e.healthTimeout, ReadyTimeout: 5 * time.Second,
		ExitTimeout: 2 * time.Second, TerminationGrace: 5 * time.Minute, RestartBackoffMin: 50 * time.Millisecond,
		RestartBackoffMax: 400 * time.Millisecond, StableAfter: time.Hour, FleetSyncInterval: 200 * time.Millisecond,
		TickInterval: 10 * time.Millisecond,
	}
}

// agent starts an agent and connects it to the server.
func (e *env) agent(cfg gse.Config) *gse.Agent {
	e.t.Helper()
	a, err := gse.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.disp.Set(cfg.AgentID, a)
	e.t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a.StopAll(sctx)
		a.Close()
	})
	return a
}

func (e *env) fleet(id string, mods ...func(*croupierv1.Fleet)) {
	e.t.Helper()
	f := &croupierv1.Fleet{FleetId: id, GameId: "g", Env: "prod"}
	for _, m := range mods {
		m(f)
	}
	if _, err := e.svc.CreateFleet(ctx(e.t), f); err != nil {
		e.t.Fatalf("create fleet: %v", err)
	}
}

func (e *env) processes(fleetID string) []*croupierv1.Process {
	e.t.Helper()
	ps, err := e.svc.ListProcesses(ctx(e.t), &croupierv1.ListProcessesRequest{FleetId: fleetID})
	if err != nil {
		e.t.Fatalf("list processes: %v", err)
	}
	return ps
}

func (e *env) liveProcesses(fleetID, status string) []*croupierv1.Process {
	var out []*croupierv1.Process
	for _, p := range e.processes(fleetID) {
		if p.GetStatus() == status {
			out = append(out, p)
		}
	}
	return out
}

func (e *env) session(id string) *croupierv1.GameServerSession {
	e.t.Helper()
	g, err := e.svc.GetGameServerSession(ctx(e.t), id)
	if err != nil {
		e.t.Fatalf("get session: %v", err)
	}
	return g
}

func (e *env) waitSession(id, status string) *croupierv1.GameServerSession {
	e.t.Helper()
	var g *croupierv1.GameServerSession
	eventually(e.t, 10*time.Second, func() bool { g = e.session(id); return g.GetStatus() == status },
		func() string { return fmt.Sprintf("session %s is %s, want %s", id, g.GetStatus(), status) })
	return g
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func eventually(t *testing.T, timeout time.Duration, cond func() bool, msg func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: %s", timeout, msg())
		}
		select {
		case <-t.Context().Done():
			t.Fatal("test context ended")
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func mustNil(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// fakeGame is an in-process game server speaking the raw GSE protos, with
// a fake pid.
type fakeGame struct {
	grpcsdk.UnimplementedGameServerGrpcSdkServiceServer
	t        *testing.T
	pid      int
	gse      grpcsdk.GseGrpcSdkServiceClient
	healthy  atomic.Bool
	hangHC   atomic.Bool // OnHealthCheck blocks past the timeout
	activate atomic.Bool // activate from inside OnStartGameServerSession
	grpcPort int

	mu         sync.Mutex
	sessions   []*grpcsdk.GameServerSession
	terminates []int64
}

func (e *env) fakeGame(agent *gse.Agent) *fakeGame {
	e.t.Helper()
	g := &fakeGame{t: e.t, pid: e.pids.alloc()}
	g.healthy.Store(true)
	g.activate.Store(true)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	mustNil(e.t, err, "listen")
	srv := grpc.NewServer()
	grpcsdk.RegisterGameServerGrpcSdkServiceServer(srv, g)
	go func() { _ = srv.Serve(lis) }()
	e.t.Cleanup(srv.Stop)
	g.grpcPort = lis.Addr().(*net.TCPAddr).Port
	g.dial(agent, e.pids)
	return g
}

// dial connects g to agent's GSE endpoint; pids records that g's pid holds
// the connections.
func (g *fakeGame) dial(agent *gse.Agent, pids *pids) {
	g.t.Helper()
	pid := g.pid // the connections are g's as created, whatever its calls later claim
	conn, err := grpc.NewClient(agent.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			if err == nil {
				pids.own(c.LocalAddr().String(), pid)
			}
			return c, err
		}))
	mustNil(g.t, err, "dial agent")
	g.t.Cleanup(func() { _ = conn.Close() })
	g.gse = grpcsdk.NewGseGrpcSdkServiceClient(conn)
}

var reqSeq atomic.Int64

// md is the metadata of a GSE call from this game.
func (g *fakeGame) md() context.Context {
	return metadata.AppendToOutgoingContext(ctx(g.t), "pid", strconv.Itoa(g.pid), "requestId", fmt.Sprint("req-", reqSeq.Add(1)))
}

// ready calls ProcessReady until the agent accepts it (it may still be
// fetching its fleets), as a game would retry.
func (g *fakeGame) ready() {
	g.t.Helper()
	var resp *grpcsdk.GseResponse
	eventually(g.t, 5*time.Second, func() bool {
		var err error
		resp, err = g.gse.ProcessReady(g.md(), &grpcsdk.ProcessReadyRequest{ClientPort: 7777, GrpcPort: int32(g.grpcPort), LogPathsToUpload: []string{filepath.Join(filepath.Dir(gsegameBin), "none.log")}})
		mustNil(g.t, err, "ProcessReady")
		return resp.GetStatus() == grpcsdk.GseResponse_OK
	}, func() string { return fmt.Sprint("ProcessReady: ", resp) })
}

func (g *fakeGame) OnHealthCheck(ctx context.Context, _ *grpcsdk.HealthCheckRequest) (*grpcsdk.HealthCheckResponse, error) {
	if g.hangHC.Load() {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return &grpcsdk.HealthCheckResponse{HealthStatus: g.healthy.Load()}, nil
}

func (g *fakeGame) OnStartGameServerSession(_ context.Context, req *grpcsdk.StartGameServerSessionRequest) (*grpcsdk.GseResponse, error) {
	g.mu.Lock()
	g.sessions = append(g.sessions, req.GetGameServerSession())
	g.mu.Unlock()
	if !g.activate.Load() {
		return &grpcsdk.GseResponse{}, nil
	}
	s := req.GetGameServerSession()
	return g.gse.ActivateGameServerSession(g.md(), &grpcsdk.ActivateGameServerSessionRequest{GameServerSessionId: s.GetGameServerSessionId(), MaxPlayers: s.GetMaxPlayers()})
}

func (g *fakeGame) OnProcessTerminate(_ context.Context, req *grpcsdk.ProcessTerminateRequest) (*grpcsdk.GseResponse, error) {
	g.mu.Lock()
	g.terminates = append(g.terminates, req.GetTerminationTime())
	g.mu.Unlock()
	return &grpcsdk.GseResponse{}, nil
}

func (g *fakeGame) terminations() []int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]int64(nil), g.terminates...)
}

func testLogger() *slog.Logger {
	if os.Getenv("GSE_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
