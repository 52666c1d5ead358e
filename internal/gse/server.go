package gse

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/api/tencentcloud/gse/grpcsdk"
	"github.com/croupier/croupier/internal/gse/launchpath"
)

// upstreamTimeout bounds a call the agent forwards to the server on behalf
// of a process.
const upstreamTimeout = 30 * time.Second

// gseServer is GseGrpcSdkService, served to game processes on loopback.
type gseServer struct {
	grpcsdk.UnimplementedGseGrpcSdkServiceServer
	a *Agent
}

func bad(format string, args ...any) *grpcsdk.GseResponse {
	return &grpcsdk.GseResponse{Status: grpcsdk.GseResponse_ERROR_400, ErrorMessage: fmt.Sprintf(format, args...)}
}

func ok() *grpcsdk.GseResponse { return &grpcsdk.GseResponse{Status: grpcsdk.GseResponse_OK} }

// fromUpstream turns the server's answer into a GseResponse: the caller's
// mistakes (unknown or foreign sessions, wrong states) are ERROR_400,
// everything else ERROR_500.
func fromUpstream(err error) *grpcsdk.GseResponse {
	if err == nil {
		return ok()
	}
	st := status.Convert(err)
	switch st.Code() {
	case codes.InvalidArgument, codes.NotFound, codes.FailedPrecondition, codes.PermissionDenied,
		codes.AlreadyExists, codes.OutOfRange, codes.ResourceExhausted, codes.Aborted:
		return &grpcsdk.GseResponse{Status: grpcsdk.GseResponse_ERROR_400, ErrorMessage: st.Message()}
	}
	return &grpcsdk.GseResponse{Status: grpcsdk.GseResponse_ERROR_500, ErrorMessage: st.Message()}
}

// call runs one GSE method: it checks the metadata, answers a retried
// requestId from the cache, and (unless anyPID) requires pid to be a
// process that called ProcessReady and has not ended.
func (s *gseServer) call(ctx context.Context, method string, anyPID bool, fn func(ctx context.Context, m callMeta, p *proc) *grpcsdk.GseResponse) (*grpcsdk.GseResponse, error) {
	m, problem := parseMeta(ctx)
	if problem != "" {
		return bad("%s: %s", method, problem), nil
	}
	if err := s.a.checkCaller(ctx, m.pid); err != nil {
		return bad("%s: %v", method, err), nil
	}
	key := dedupeKey(m, method)
	if prev, hit := s.a.dedupe.get(key, s.a.now()); hit {
		return proto.Clone(prev).(*grpcsdk.GseResponse), nil
	}
	var p *proc
	if !anyPID {
		var why string
		if p, why = s.a.readyProcess(m.pid); p == nil {
			return bad("%s: %s", method, why), nil
		}
	}
	ctx, cancel := context.WithTimeout(ctx, upstreamTimeout)
	defer cancel()
	resp := fn(ctx, m, p)
	if resp.GetStatus() != grpcsdk.GseResponse_ERROR_500 {
		s.a.dedupe.put(key, proto.Clone(resp), s.a.now())
	}
	return resp, nil
}

// readyProcess returns the live, ready process of pid, or why there is none.
func (a *Agent) readyProcess(pid int) (*proc, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.lookupPIDLocked(pid)
	switch {
	case p == nil:
		return nil, fmt.Sprintf("pid %d is not a process this agent knows; call ProcessReady first", pid)
	case p.status == statusLaunching:
		return nil, fmt.Sprintf("pid %d has not called ProcessReady yet", pid)
	}
	return p, ""
}

func (s *gseServer) ProcessReady(ctx context.Context, req *grpcsdk.ProcessReadyRequest) (*grpcsdk.GseResponse, error) {
	return s.call(ctx, "ProcessReady", true, func(ctx context.Context, m callMeta, _ *proc) *grpcsdk.GseResponse {
		if req.GetGrpcPort() <= 0 || req.GetGrpcPort() > 65535 {
			return bad("ProcessReady: grpcPort %d is not a port; the agent calls the process's GameServerGrpcSdkService there", req.GetGrpcPort())
		}
		if req.GetClientPort() < 0 || req.GetClientPort() > 65535 {
			return bad("ProcessReady: clientPort %d is not a port", req.GetClientPort())
		}
		if why := s.a.processReady(m.pid, req); why != "" {
			return bad("ProcessReady: %s", why)
		}
		// Tell the server before answering, so that the process's next
		// calls (ReportCustomData, ...) find it there. If the server cannot
		// be reached the process is still ready here; the reporter retries.
		s.a.sendReport(ctx)
		return ok()
	})
}

func (s *gseServer) ActivateGameServerSession(ctx context.Context, req *grpcsdk.ActivateGameServerSessionRequest) (*grpcsdk.GseResponse, error) {
	return s.call(ctx, "ActivateGameServerSession", false, func(ctx context.Context, _ callMeta, p *proc) *grpcsdk.GseResponse {
		_, err := s.a.up.ActivateGameServerSession(ctx, &croupierv1.ActivateGameServerSessionRequest{
			AgentId: s.a.cfg.AgentID, ProcessId: p.id, GameServerSessionId: req.GetGameServerSessionId(), MaxPlayers: req.GetMaxPlayers(),
		})
		if err == nil {
			s.a.mu.Lock()
			if p.sessionID == "" {
				p.sessionID, p.sessionStart = req.GetGameServerSessionId(), s.a.now()
			}
			s.a.mu.Unlock()
		}
		return fromUpstream(err)
	})
}

func (s *gseServer) AcceptPlayerSession(ctx context.Context, req *grpcsdk.AcceptPlayerSessionRequest) (*grpcsdk.GseResponse, error) {
	return s.call(ctx, "AcceptPlayerSession", false, func(ctx context.Context, _ callMeta, p *proc) *grpcsdk.GseResponse {
		_, err := s.a.up.AcceptPlayerSession(ctx, &croupierv1.AcceptPlayerSessionRequest{
			AgentId: s.a.cfg.AgentID, ProcessId: p.id, GameServerSessionId: req.GetGameServerSessionId(), PlayerSessionId: req.GetPlayerSessionId(),
		})
		return fromUpstream(err)
	})
}

func (s *gseServer) RemovePlayerSession(ctx context.Context, req *grpcsdk.RemovePlayerSessionRequest) (*grpcsdk.GseResponse, error) {
	return s.call(ctx, "RemovePlayerSession", false, func(ctx context.Context, _ callMeta, p *proc) *grpcsdk.GseResponse {
		_, err := s.a.up.RemovePlayerSession(ctx, &croupierv1.RemovePlayerSessionRequest{
			AgentId: s.a.cfg.AgentID, ProcessId: p.id, GameServerSessionId: req.GetGameServerSessionId(), PlayerSessionId: req.GetPlayerSessionId(),
		})
		return fromUpstream(err)
	})
}

// DescribePlayerSessions answers with a gRPC status on failure: its
// response has no status field.
func (s *gseServer) DescribePlayerSessions(ctx context.Context, req *grpcsdk.DescribePlayerSessionsRequest) (*grpcsdk.DescribePlayerSessionsResponse, error) {
	m, problem := parseMeta(ctx)
	if problem != "" {
		return nil, status.Error(codes.InvalidArgument, "DescribePlayerSessions: "+problem)
	}
	if err := s.a.checkCaller(ctx, m.pid); err != nil {
		return nil, status.Error(codes.PermissionDenied, "DescribePlayerSessions: "+err.Error())
	}
	p, why := s.a.readyProcess(m.pid)
	if p == nil {
		return nil, status.Error(codes.InvalidArgument, "DescribePlayerSessions: "+why)
	}
	ctx, cancel := context.WithTimeout(ctx, upstreamTimeout)
	defer cancel()
	res, err := s.a.up.DescribeProcessPlayerSessions(ctx, &croupierv1.DescribeProcessPlayerSessionsRequest{
		AgentId: s.a.cfg.AgentID, ProcessId: p.id, GameServerSessionId: req.GetGameServerSessionId(), PlayerId: req.GetPlayerId(),
		PlayerSessionId: req.GetPlayerSessionId(), PlayerSessionStatusFilter: req.GetPlayerSessionStatusFilter(),
		NextToken: req.GetNextToken(), Limit: req.GetLimit(),
	})
	if err != nil {
		return nil, err
	}
	out := &grpcsdk.DescribePlayerSessionsResponse{NextToken: res.GetNextToken()}
	for _, ps := range res.GetPlayerSessions() {
		out.PlayerSessions = append(out.PlayerSessions, &grpcsdk.PlayerSession{
			PlayerSessionId: ps.GetPlayerSessionId(), PlayerId: ps.GetPlayerId(), GameServerSessionId: ps.GetGameServerSessionId(),
			FleetId: ps.GetFleetId(), IpAddress: ps.GetIpAddress(), Status: ps.GetStatus(),
			CreationTime: ps.GetCreationTimeMs() / 1000, TerminationTime: ps.GetTerminationTimeMs() / 1000,
			Port: ps.GetPort(), PlayerData: ps.GetPlayerData(), DnsName: ps.GetDnsName(),
		})
	}
	return out, nil
}

func (s *gseServer) UpdatePlayerSessionCreationPolicy(ctx context.Context, req *grpcsdk.UpdatePlayerSessionCreationPolicyRequest) (*grpcsdk.GseResponse, error) {
	return s.call(ctx, "UpdatePlayerSessionCreationPolicy", false, func(ctx context.Context, _ callMeta, p *proc) *grpcsdk.GseResponse {
		_, err := s.a.up.UpdatePlayerSessionCreationPolicy(ctx, &croupierv1.UpdatePlayerSessionCreationPolicyRequest{
			AgentId: s.a.cfg.AgentID, ProcessId: p.id, GameServerSessionId: req.GetGameServerSessionId(),
			NewPlayerSessionCreationPolicy: req.GetNewPlayerSessionCreationPolicy(),
		})
		return fromUpstream(err)
	})
}

func (s *gseServer) TerminateGameServerSession(ctx context.Context, req *grpcsdk.TerminateGameServerSessionRequest) (*grpcsdk.GseResponse, error) {
	return s.call(ctx, "TerminateGameServerSession", false, func(ctx context.Context, _ callMeta, p *proc) *grpcsdk.GseResponse {
		_, err := s.a.up.EndGameServerSession(ctx, &croupierv1.EndGameServerSessionRequest{
			AgentId: s.a.cfg.AgentID, ProcessId: p.id, GameServerSessionId: req.GetGameServerSessionId(),
		})
		if err == nil {
			s.a.sessionEnded(p, req.GetGameServerSessionId())
		}
		return fromUpstream(err)
	})
}

func (s *gseServer) ProcessEnding(ctx context.Context, _ *grpcsdk.ProcessEndingRequest) (*grpcsdk.GseResponse, error) {
	return s.call(ctx, "ProcessEnding", false, func(_ context.Context, _ callMeta, p *proc) *grpcsdk.GseResponse {
		s.a.processEnding(p)
		return ok()
	})
}

func (s *gseServer) ReportCustomData(ctx context.Context, req *grpcsdk.ReportCustomDataRequest) (*grpcsdk.GseResponse, error) {
	return s.call(ctx, "ReportCustomData", false, func(ctx context.Context, _ callMeta, p *proc) *grpcsdk.GseResponse {
		if req.GetCurrentCustomCount() < 0 || req.GetMaxCustomCount() < 0 {
			return bad("ReportCustomData: counts must not be negative")
		}
		_, err := s.a.up.ReportCustomData(ctx, &croupierv1.ReportCustomDataRequest{
			AgentId: s.a.cfg.AgentID, ProcessId: p.id, CurrentCustomCount: req.GetCurrentCustomCount(), MaxCustomCount: req.GetMaxCustomCount(),
		})
		if err == nil {
			s.a.mu.Lock()
			p.customCur, p.customMax = req.GetCurrentCustomCount(), req.GetMaxCustomCount()
			s.a.mu.Unlock()
		}
		return fromUpstream(err)
	})
}

// processReady registers pid as ready, or says why it cannot be.
func (a *Agent) processReady(pid int, req *grpcsdk.ProcessReadyRequest) string {
	logFiles, why := resolveLogPaths(req.GetLogPathsToUpload(), processCwd(pid), a.cfg.BuildDirs)
	if why != "" {
		return why
	}
	a.launchMu.RLock() // see launch
	defer a.launchMu.RUnlock()
	a.mu.Lock()
	p := a.lookupPIDLocked(pid)
	if p == nil {
		p = a.launchedAncestorLocked(pid)
	}
	if p == nil {
		fleetID, why := a.defaultFleetLocked()
		if why != "" {
			a.mu.Unlock()
			return fmt.Sprintf("pid %d was not launched by this agent and %s", pid, why)
		}
		ticks, alive := a.cfg.ProcessInfo(pid)
		if !alive {
			a.mu.Unlock()
			return fmt.Sprintf("pid %d is not a running process on this host", pid)
		}
		p = &proc{id: a.processID(pid, ticks), pid: pid, gamePID: pid, startTicks: ticks, gameTicks: ticks, fleetID: fleetID,
			status: statusLaunching, healthy: true, startedAt: a.now()}
		a.procs[p.id] = p
		a.byPID[pid] = p
		a.log.Info("game process registered itself", "pid", pid, "process", p.id, "fleet", fleetID)
	}
	if p.status == statusTerminating {
		a.mu.Unlock()
		return fmt.Sprintf("process %s is terminating and cannot become ready again", p.id)
	}
	if pid != p.gamePID {
		ticks, alive := a.cfg.ProcessInfo(pid)
		if !alive {
			a.mu.Unlock()
			return fmt.Sprintf("pid %d is not a running process on this host", pid)
		}
		p.gamePID, p.gameTicks = pid, ticks
	}
	a.byPID[pid] = p
	p.clientPort, p.grpcPort = int(req.GetClientPort()), int(req.GetGrpcPort())
	p.logPaths = append([]string(nil), req.GetLogPathsToUpload()...)
	p.logFiles = logFiles
	if p.status == statusLaunching {
		p.readyAt = a.now()
	}
	p.status, p.healthy, p.failures = statusActive, true, 0
	old := p.conn
	p.conn, p.client = nil, nil
	conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", p.grpcPort), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err == nil {
		p.conn, p.client = conn, grpcsdk.NewGameServerGrpcSdkServiceClient(conn)
	}
	a.changedLocked(p)
	a.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	if err != nil {
		return fmt.Sprintf("cannot reach grpcPort %d: %v", req.GetGrpcPort(), err)
	}
	a.log.Info("game process ready", "process", p.id, "pid", pid, "client_port", req.GetClientPort(), "grpc_port", req.GetGrpcPort())
	a.saveState()
	return ""
}

// launchedAncestorLocked finds a launched, not yet ready process of which
// pid is a descendant: launch paths may be wrapper scripts that start the
// game as a child.
func (a *Agent) launchedAncestorLocked(pid int) *proc {
	cur := pid
	for range 8 {
		cur = parentPID(cur)
		if cur <= 1 {
			return nil
		}
		if p := a.lookupPIDLocked(cur); p != nil && p.managed && p.status == statusLaunching {
			return p
		}
	}
	return nil
}

// defaultFleetLocked is the fleet of a process that registers itself.
func (a *Agent) defaultFleetLocked() (string, string) {
	if a.cfg.DefaultFleetID != "" {
		return a.cfg.DefaultFleetID, ""
	}
	if !a.fleetsKnown {
		return "", "the agent has not received its fleets from the server yet; retry ProcessReady shortly"
	}
	if len(a.fleets) == 1 {
		for id := range a.fleets {
			return id, ""
		}
	}
	return "", fmt.Sprintf("the agent hosts %d fleets; configure its default fleet to accept game servers started by hand", len(a.fleets))
}

// Limits on ProcessReady.logPathsToUpload.
const (
	maxLogPaths     = 16
	maxLogPathBytes = launchpath.MaxBytes
)

// resolveLogPaths makes the declared log paths absolute (relative ones
// against the process's working directory) and checks them: at most
// maxLogPaths, each at most maxLogPathBytes, and under the agent's build
// directories — the agent reads these files as its own user and serves them
// to operators with fleet:read, so a process must not be able to name the
// agent's keys or any other file of the host. (openLog checks again after
// symlinks, when the file is read.)
func resolveLogPaths(paths []string, cwd string, dirs []string) ([]string, string) {
	if len(paths) > maxLogPaths {
		return nil, fmt.Sprintf("%d logPathsToUpload; at most %d are allowed", len(paths), maxLogPaths)
	}
	out := make([]string, len(paths))
	for i, p := range paths {
		if p == "" || len(p) > maxLogPathBytes || strings.ContainsRune(p, 0) {
			return nil, fmt.Sprintf("logPathsToUpload entry %s: give a non-empty path of at most %d bytes", launchpath.Quote(p), maxLogPathBytes)
		}
		switch {
		case filepath.IsAbs(p) || cwd == "":
			out[i] = filepath.Clean(p)
		default:
			out[i] = filepath.Join(cwd, p)
		}
		if !launchpath.Within(out[i], dirs) {
			name := launchpath.Quote(p)
			if out[i] != p {
				name += " (" + launchpath.Quote(out[i]) + ")"
			}
			return nil, fmt.Sprintf("logPathsToUpload entry %s is outside the agent's build directories (%s); the agent keeps and serves logs only from there",
				name, strings.Join(dirs, ", "))
		}
	}
	return out, ""
}
