package gse

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"syscall"
	"time"

	"github.com/croupier/croupier/internal/gse/launchpath"
	"github.com/croupier/croupier/internal/tlsconf"
)

// DefaultAddr is where GSE game servers expect the agent (LOCAL_ADDRESS in
// GSE's samples).
const DefaultAddr = "127.0.0.1:5758"

// AddrEnv is the environment variable with the agent's GSE address that
// the agent sets for the processes it launches. GSE games hard-code
// 127.0.0.1:5758; Croupier's example and SDK read this variable first, so
// tests can run agents on other ports.
const AddrEnv = "GSE_SDK_ADDR"

// Defaults of Config.
const (
	DefaultHealthInterval    = 60 * time.Second
	DefaultHealthTimeout     = 5 * time.Second
	DefaultHealthFailures    = 3
	DefaultReadyTimeout      = 5 * time.Minute
	DefaultExitTimeout       = 30 * time.Second
	DefaultTerminationGrace  = 5 * time.Minute
	DefaultRestartBackoffMin = time.Second
	DefaultRestartBackoffMax = time.Minute
	DefaultStableAfter       = time.Minute
	DefaultFleetSyncInterval = 30 * time.Second
	DefaultTickInterval      = 250 * time.Millisecond
	DefaultLogRetention      = 50
	DefaultMaxLogCopyBytes   = 64 << 20
)

// Config configures an Agent. AgentID, GameID, Env and Upstream are
// required; DataDir is required to launch processes (state and logs live
// there).
type Config struct {
	AgentID string
	GameID  string
	Env     string
	// Labels select the fleets this agent hosts (Fleet.agent_selector).
	Labels map[string]string
	// Addr is the loopback address of the GSE endpoint (default
	// 127.0.0.1:5758; port 0 picks one).
	Addr string
	// BuildDirs are the only directories the agent launches executables
	// from (see launchpath): a fleet's launch path must lie under one of
	// them as written and after symlinks. Empty: nothing is launched.
	// New makes them absolute and adds their resolved forms.
	BuildDirs []string
	// DataDir holds gse/state.json (processes to adopt after a restart)
	// and gse/logs/ (captured output and collected log files).
	DataDir string
	// IPAddress and DNSName are what players connect to, reported with
	// every process and copied into sessions.
	IPAddress string
	DNSName   string
	// DefaultFleetID is the fleet of processes that call ProcessReady
	// without having been launched by this agent. Empty: such a process is
	// accepted only when the agent hosts exactly one fleet.
	DefaultFleetID string

	HealthInterval time.Duration // between OnHealthCheck rounds
	HealthTimeout  time.Duration // per OnHealthCheck call
	HealthFailures int           // failures in a row that make a process unhealthy
	// ReadyTimeout: a launched process that has not called ProcessReady by
	// then is killed.
	ReadyTimeout time.Duration
	// ExitTimeout: a process that called ProcessEnding and has not exited
	// by then is killed.
	ExitTimeout time.Duration
	// TerminationGrace is the terminationTime offset of OnProcessTerminate
	// without protection (GSE: 5 minutes).
	TerminationGrace time.Duration
	// Restart backoff of a crashing slot doubles from Min to Max; a process
	// that ran StableAfter resets it.
	RestartBackoffMin time.Duration
	RestartBackoffMax time.Duration
	StableAfter       time.Duration
	// FleetSyncInterval is how often the agent asks the server for its
	// fleets and sends a full process snapshot.
	FleetSyncInterval time.Duration
	// TickInterval is how often deadlines (ready, exit, kill), restarts and
	// the liveness of processes that are not the agent's children are
	// checked.
	TickInterval time.Duration
	// LogRetention is how many ended processes keep their collected logs.
	LogRetention int
	// MaxLogCopyBytes caps each collected log file (the tail is kept).
	MaxLogCopyBytes int64

	Upstream Upstream
	Logger   *slog.Logger
	// ProcessInfo reports whether pid is alive and its start time in clock
	// ticks since boot, which tells a pid from a later process reusing it.
	// Nil reads /proc. Tests with in-process fake game servers inject it.
	ProcessInfo func(pid int) (startTicks uint64, alive bool)
	// CallerCheck reports whether the GSE call from client to server (the
	// endpoint's address) comes from process pid, the pid the call carries;
	// a call that fails it is refused. Nil is CheckSocketOwner (Linux
	// /proc). Tests with fake pids inject it.
	CallerCheck func(client, server net.Addr, pid int) error
	// Kill sends signal sig to pid (a negative pid: the process group), as
	// syscall.Kill, which is the default. Tests with fake pids inject it.
	Kill func(pid int, sig syscall.Signal) error
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (c *Config) withDefaults() error {
	var p []string
	if c.AgentID == "" || c.GameID == "" || c.Env == "" {
		p = append(p, "AgentID, GameID and Env are required")
	}
	if c.Upstream == nil {
		p = append(p, "Upstream is required (the fleet server's FleetAgentService)")
	}
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		p = append(p, fmt.Sprintf("gse address %q is not host:port", c.Addr))
	} else if err := tlsconf.CheckInsecureAllowed(c.Addr, true); err != nil {
		p = append(p, fmt.Sprintf("gse address %q: game processes connect in plaintext, so it must be a loopback address", c.Addr))
	}
	if dirs, err := launchpath.Dirs(c.BuildDirs); err != nil {
		p = append(p, err.Error())
	} else {
		c.BuildDirs = dirs
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.HealthInterval, DefaultHealthInterval)
	def(&c.HealthTimeout, DefaultHealthTimeout)
	def(&c.ReadyTimeout, DefaultReadyTimeout)
	def(&c.ExitTimeout, DefaultExitTimeout)
	def(&c.TerminationGrace, DefaultTerminationGrace)
	def(&c.RestartBackoffMin, DefaultRestartBackoffMin)
	def(&c.RestartBackoffMax, DefaultRestartBackoffMax)
	def(&c.StableAfter, DefaultStableAfter)
	def(&c.FleetSyncInterval, DefaultFleetSyncInterval)
	def(&c.TickInterval, DefaultTickInterval)
	if c.HealthFailures <= 0 {
		c.HealthFailures = DefaultHealthFailures
	}
	if c.LogRetention <= 0 {
		c.LogRetention = DefaultLogRetention
	}
	if c.MaxLogCopyBytes <= 0 {
		c.MaxLogCopyBytes = DefaultMaxLogCopyBytes
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.ProcessInfo == nil {
		c.ProcessInfo = procInfo
	}
	if c.CallerCheck == nil {
		c.CallerCheck = CheckSocketOwner
	}
	if c.Kill == nil {
		c.Kill = syscall.Kill
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if len(p) > 0 {
		return errors.New("gse: " + joinProblems(p))
	}
	return nil
}

func joinProblems(p []string) string {
	out := p[0]
	for _, s := range p[1:] {
		out += "; " + s
	}
	return out
}
