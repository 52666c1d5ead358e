package gse

import (
	"time"

	"google.golang.org/grpc"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/api/tencentcloud/gse/grpcsdk"
)

// Process statuses, as reported to the server (same strings as the store).
const (
	statusLaunching   = "LAUNCHING"
	statusActive      = "ACTIVE"
	statusTerminating = "TERMINATING"
	statusTerminated  = "TERMINATED"
	statusCrashed     = "CRASHED"
)

// Reasons a process ended or is ending (Process.status_reason).
const (
	ReasonReadyTimeout = "READY_TIMEOUT"
	ReasonExitTimeout  = "EXIT_TIMEOUT"
	ReasonUnhealthy    = "UNHEALTHY"
	ReasonScaleIn      = "SCALE_IN"
	ReasonConfig       = "RUNTIME_CONFIGURATION_CHANGED"
	ReasonFleetRemoved = "FLEET_REMOVED"
	ReasonKilled       = "KILLED"
	ReasonExited       = "EXITED"
)

// proc is one game-server process. Fields are guarded by Agent.mu.
type proc struct {
	id         string
	pid        int    // the launched (or adopted, or self-registered) pid: killed and watched
	gamePID    int    // the pid in the process's metadata; differs when the launch path is a wrapper
	startTicks uint64 // of pid
	// gameTicks is gamePID's start time (startTicks when gamePID is pid):
	// a kill checks it, so that a pid reused since the game exited is not
	// killed.
	gameTicks  uint64
	fleetID    string
	slot       string // supervisor slot; "" when not launched by the agent
	launchPath string
	managed    bool // launched by this agent (its process group)

	status  string
	reason  string
	healthy bool
	// failures counts health checks failed in a row.
	failures    int
	healthBusy  bool
	clientPort  int
	grpcPort    int
	logPaths    []string // as declared in ProcessReady
	logFiles    []string // the same, absolute
	stdoutPath  string
	startedAt   time.Time
	readyAt     time.Time
	endedAt     time.Time
	ending      bool      // called ProcessEnding
	terminating bool      // OnProcessTerminate sent (or due)
	killAt      time.Time // zero: no kill deadline
	killReason  string
	// sessionID is the session the agent handed to the process and the
	// process has not ended; sessionStart is when it was handed over.
	sessionID    string
	sessionStart time.Time
	// retireWhenFree: the process must end (reason retireReason) but is
	// fully protected while it hosts a session.
	retireWhenFree bool
	retireReason   string
	customCur      int32
	customMax      int32

	conn   *grpc.ClientConn
	client grpcsdk.GameServerGrpcSdkServiceClient
}

func (p *proc) ended() bool { return p.status == statusTerminated || p.status == statusCrashed }

// toProto is the report of p; gameID and env are the agent's.
func (p *proc) toProto(agentID, gameID, env, ip, dns string) *croupierv1.Process {
	return &croupierv1.Process{
		ProcessId: p.id, AgentId: agentID, FleetId: p.fleetID, GameId: gameID, Env: env, Pid: int32(p.gamePID),
		Status: p.status, Healthy: p.healthy, IpAddress: ip, DnsName: dns, ClientPort: int32(p.clientPort),
		GrpcPort: int32(p.grpcPort), LogPaths: append([]string(nil), p.logPaths...),
		CurrentCustomCount: p.customCur, MaxCustomCount: p.customMax, StartTimeMs: msOf(p.startedAt),
		ReadyTimeMs: msOf(p.readyAt), EndTimeMs: msOf(p.endedAt), StatusReason: p.reason, LaunchPath: p.launchPath,
		GameServerSessionId: p.sessionID,
	}
}

func msOf(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}
