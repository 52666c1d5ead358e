package gse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/api/tencentcloud/gse/grpcsdk"
)

// Lock order: launchMu, then reportMu, then mu, then lifeMu (goAsync is
// called with mu held); stateMu is taken without mu.

// Agent hosts the GSE endpoint and supervises game-server processes. Create
// it with New, Start it, and Close it; Close leaves game processes running
// so that the next agent on the same data dir adopts them (StopAll ends
// them).
type Agent struct {
	cfg Config
	log *slog.Logger
	up  Upstream

	mu      sync.Mutex
	procs   map[string]*proc // live processes by id
	byPID   map[int]*proc    // live processes by launched pid and by game pid
	history []*proc          // ended processes, oldest first, at most LogRetention
	fleets  map[string]*croupierv1.Fleet
	// fleetsKnown: the fleet list came from the server at least once, so
	// slots of fleets missing from it may be retired.
	fleetsKnown bool
	slots       map[string]*slot
	dirty       map[string]bool // process ids to report
	full        bool            // next report is a full snapshot
	stateDirty  bool            // the state file is behind the table
	// stopping: StopAll runs; nothing is launched any more.
	stopping bool

	lis    net.Listener
	srv    *grpc.Server
	dedupe *dedupe

	kickReport chan struct{}
	kickFleets chan struct{}
	kickTick   chan struct{}
	stateMu    sync.Mutex // serialises writes of the state file
	reportMu   sync.Mutex // serialises reports to the server
	// launchMu is held while a process is started and registered; a
	// ProcessReady waits for it so that it never sees its own launch half
	// done.
	launchMu sync.RWMutex

	lifeMu  sync.Mutex
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	started bool
	closed  bool
}

// initialSyncTimeout bounds the fleet fetch Start waits for.
const initialSyncTimeout = 2 * time.Second

// New validates cfg and returns an agent that Start brings up.
func New(cfg Config) (*Agent, error) {
	if err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Agent{
		cfg: cfg, log: cfg.Logger.With("component", "gse"), up: cfg.Upstream,
		procs: map[string]*proc{}, byPID: map[int]*proc{}, fleets: map[string]*croupierv1.Fleet{},
		slots: map[string]*slot{}, dirty: map[string]bool{}, full: true, dedupe: newDedupe(dedupeSize, dedupeTTL),
		kickReport: make(chan struct{}, 1), kickFleets: make(chan struct{}, 1), kickTick: make(chan struct{}, 1),
		ctx: ctx, cancel: cancel,
	}, nil
}

// Start adopts the processes recorded in the data dir that still run,
// listens on the GSE address and starts the agent's loops: fleet sync,
// reporting, health checks and supervision. It returns once the endpoint
// accepts connections.
func (a *Agent) Start() error {
	a.lifeMu.Lock()
	defer a.lifeMu.Unlock()
	if a.started || a.closed {
		return errors.New("gse: agent already started or closed")
	}
	a.started = true
	if a.cfg.DataDir != "" {
		a.adopt()
	}
	// Best effort, so that processes registering themselves right away find
	// their fleet; the fleet loop keeps trying if the server is not there.
	sctx, cancel := context.WithTimeout(a.ctx, initialSyncTimeout)
	if err := a.syncFleets(sctx); err != nil {
		a.log.Warn("fleets not fetched at start; retrying in the background", "err", err)
	}
	cancel()
	lis, err := net.Listen("tcp", a.cfg.Addr)
	if err != nil {
		return fmt.Errorf("gse: listen on %s: %w", a.cfg.Addr, err)
	}
	a.lis = lis
	a.srv = grpc.NewServer(grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}),
		grpc.StatsHandler(callerTagger{}))
	grpcsdk.RegisterGseGrpcSdkServiceServer(a.srv, &gseServer{a: a})
	a.spawn(func(context.Context) {
		if err := a.srv.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			a.log.Error("gse endpoint stopped", "err", err)
		}
	})
	a.spawn(a.fleetLoop)
	a.spawn(a.reportLoop)
	a.spawn(a.healthLoop)
	a.spawn(a.tickLoop)
	a.log.Info("gse endpoint listening", "addr", lis.Addr().String(), "agent", a.cfg.AgentID)
	return nil
}

// spawn runs fn in a goroutine the agent owns until Close. Callers hold
// lifeMu or run before Close can.
func (a *Agent) spawn(fn func(ctx context.Context)) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		fn(a.ctx)
	}()
}

// goAsync runs fn in an agent-owned goroutine unless the agent is closing.
func (a *Agent) goAsync(fn func(ctx context.Context)) {
	a.lifeMu.Lock()
	defer a.lifeMu.Unlock()
	if a.closed {
		return
	}
	a.spawn(fn)
}

// Addr is the bound GSE address ("" before Start).
func (a *Agent) Addr() string {
	if a.lis == nil {
		return ""
	}
	return a.lis.Addr().String()
}

// Close stops the endpoint and the loops, saves the state file and closes
// the connections to the processes. The processes keep running; a new
// agent with the same DataDir adopts them.
func (a *Agent) Close() {
	a.lifeMu.Lock()
	if a.closed {
		a.lifeMu.Unlock()
		return
	}
	a.closed = true
	a.lifeMu.Unlock()
	a.cancel()
	if a.srv != nil {
		a.srv.Stop()
	}
	a.wg.Wait()
	a.saveState()
	a.mu.Lock()
	for _, p := range a.procs {
		if p.conn != nil {
			_ = p.conn.Close()
		}
	}
	a.mu.Unlock()
	a.log.Info("gse agent stopped")
}

// StopAll stops supervision (nothing is relaunched), kills every live
// process (for `croupier dev` and tests that must not leave processes
// behind) and waits up to ctx for their exits to be recorded.
func (a *Agent) StopAll(ctx context.Context) {
	// launchMu: no launch is half done while the table is emptied, and
	// stopping keeps later ticks from launching.
	a.launchMu.Lock()
	a.mu.Lock()
	a.stopping = true
	for _, p := range a.procs {
		p.killReason = ReasonKilled
		a.killLocked(p)
	}
	a.mu.Unlock()
	a.launchMu.Unlock()
	for {
		a.mu.Lock()
		n := len(a.procs)
		a.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond):
			a.checkLiveness()
		}
	}
}

// Resync sends a full process snapshot and refreshes the fleets; call it
// whenever the connection to the server is (re)established.
func (a *Agent) Resync() {
	a.mu.Lock()
	a.full = true
	a.mu.Unlock()
	kick(a.kickReport)
	kick(a.kickFleets)
}

// Processes returns the reports of the live processes, and of ended ones
// still remembered, ordered by id.
func (a *Agent) Processes() []*croupierv1.Process {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]*croupierv1.Process, 0, len(a.procs)+len(a.history))
	for _, p := range a.procs {
		out = append(out, a.report(p))
	}
	for _, p := range a.history {
		out = append(out, a.report(p))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetProcessId() < out[j].GetProcessId() })
	return out
}

func (a *Agent) report(p *proc) *croupierv1.Process {
	return p.toProto(a.cfg.AgentID, a.cfg.GameID, a.cfg.Env, a.cfg.IPAddress, a.cfg.DNSName)
}

// changed records that p must be reported; callers hold mu.
func (a *Agent) changedLocked(p *proc) {
	a.dirty[p.id] = true
	kick(a.kickReport)
}

func kick(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (a *Agent) now() time.Time { return a.cfg.Now() }

// gseDir is the agent's directory for state and logs.
func (a *Agent) gseDir() string { return filepath.Join(a.cfg.DataDir, "gse") }

// lookupPID returns the live process whose launched or game pid is pid.
func (a *Agent) lookupPIDLocked(pid int) *proc {
	if p := a.byPID[pid]; p != nil && !p.ended() {
		return p
	}
	return nil
}

// forget removes an ended process from the live tables and keeps it in the
// bounded history; it returns processes pushed out of the history, whose
// logs may be deleted.
func (a *Agent) forgetLocked(p *proc) (evicted []*proc) {
	delete(a.procs, p.id)
	if a.byPID[p.pid] == p {
		delete(a.byPID, p.pid)
	}
	if a.byPID[p.gamePID] == p {
		delete(a.byPID, p.gamePID)
	}
	a.history = append(a.history, p)
	for len(a.history) > a.cfg.LogRetention {
		evicted = append(evicted, a.history[0])
		a.history = a.history[1:]
	}
	return evicted
}

// findLocked returns a live or remembered process by id.
func (a *Agent) findLocked(id string) *proc {
	if p := a.procs[id]; p != nil {
		return p
	}
	for _, p := range a.history {
		if p.id == id {
			return p
		}
	}
	return nil
}

// processID names a process uniquely across agents and restarts.
func (a *Agent) processID(pid int, startTicks uint64) string {
	return fmt.Sprintf("%s.%d.%d", a.cfg.AgentID, pid, startTicks)
}
