package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/croupier/croupier/internal/store"
)

// Defaults of Config and of fleets that leave a value unset.
const (
	DefaultSweepInterval       = time.Second
	DefaultReservationTimeout  = 60 * time.Second
	DefaultActivationTimeout   = 600 * time.Second
	DefaultPlacementTimeout    = 600 * time.Second
	DefaultMaxPendingPerFleet  = 1000
	DefaultTerminationGrace    = 5 * time.Minute
	DefaultAgentCommandTimeout = 30 * time.Second
	// sweepBatch bounds the rows one sweep step handles, so a backlog is
	// worked off over several ticks instead of in one long burst.
	sweepBatch = 500
)

// Config configures a Service. Store and Agents are required.
type Config struct {
	Store  *store.Store
	Agents AgentDispatcher
	Logger *slog.Logger
	// Now is the clock for deadlines; nil means time.Now. It must agree
	// with the store's clock.
	Now func() time.Time
	// SweepInterval is how often timeouts (activation, reservation,
	// placement) are applied and queued placements retried.
	SweepInterval time.Duration
	// MaxPendingPerFleet bounds the placement queue of one fleet.
	MaxPendingPerFleet int
	// AgentCommandTimeout bounds a command to an agent other than
	// StartGameServerSession (which is bounded by the activation timeout).
	AgentCommandTimeout time.Duration
	// AuthorizeAgent, when set, is called by the agent API for each
	// request with its agent_id and, where the request names one, the
	// game/env scope (GetAgentFleets, and each process of ReportProcesses;
	// "" otherwise). It refuses the request by returning a status error,
	// e.g. when agentID is not the caller's certificate identity or the
	// scope is not the one the certificate confines the agent to.
	AuthorizeAgent func(ctx context.Context, agentID, gameID, env string) error
}

func (c *Config) withDefaults() error {
	if c.Store == nil {
		return errors.New("fleet: Config.Store is required")
	}
	if c.Agents == nil {
		return errors.New("fleet: Config.Agents is required (TunnelDispatcher on a server)")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = DefaultSweepInterval
	}
	if c.MaxPendingPerFleet <= 0 {
		c.MaxPendingPerFleet = DefaultMaxPendingPerFleet
	}
	if c.AgentCommandTimeout <= 0 {
		c.AgentCommandTimeout = DefaultAgentCommandTimeout
	}
	return nil
}

// Service is the fleet plane's logic. Create it with New, Start it, and
// Close it when done; the methods are safe for concurrent use.
type Service struct {
	cfg   Config
	st    *store.Store
	log   *slog.Logger
	agent AgentDispatcher

	// kick wakes the sweeper to retry queued placements at once, when
	// capacity may have appeared (a process became ready or free).
	kick chan struct{}
	// fulfilMu serialises placement fulfilment on this node; across nodes
	// the store's compare-and-set keeps it correct.
	fulfilMu sync.Mutex
	// buildDirs: what the agents report they may launch.
	buildDirs buildDirBook

	lifeMu sync.Mutex
	ctx    context.Context // cancelled by Close; parent of background work
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed bool
}

// New validates cfg and returns a Service that is not yet sweeping.
func New(cfg Config) (*Service, error) {
	if err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Service{
		cfg: cfg, st: cfg.Store, log: cfg.Logger, agent: cfg.Agents,
		kick: make(chan struct{}, 1), ctx: ctx, cancel: cancel,
	}, nil
}

// Start runs the sweeper (timeouts and the placement queue) until Close.
func (s *Service) Start() {
	s.goBackground(s.sweepLoop)
}

// Close stops background work and waits for it, including commands to
// agents still in flight (their contexts are cancelled).
func (s *Service) Close() {
	s.lifeMu.Lock()
	s.closed = true
	s.lifeMu.Unlock()
	s.cancel()
	s.wg.Wait()
}

// goBackground runs fn in a goroutine owned by the service; it is not
// started after Close.
func (s *Service) goBackground(fn func(ctx context.Context)) {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.closed {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn(s.ctx)
	}()
}

// wake asks the sweeper to retry the placement queue soon.
func (s *Service) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *Service) now() time.Time { return s.cfg.Now() }

// newID returns prefix + "-" + 20 random hex digits.
func newID(prefix string) string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}
