package gse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/api/tencentcloud/gse/grpcsdk"
	"github.com/croupier/croupier/internal/gse/launchpath"
)

// StartGameServerSession serves the server's StartGameServerSessionCommand:
// it calls OnStartGameServerSession on the process and returns its answer.
// No lock is held during the callback, so the process's
// ActivateGameServerSession from inside it goes through.
func (a *Agent) StartGameServerSession(ctx context.Context, cmd *croupierv1.StartGameServerSessionCommand) (*croupierv1.StartGameServerSessionResult, error) {
	g := cmd.GetGameServerSession()
	a.mu.Lock()
	p := a.procs[cmd.GetProcessId()]
	var why string
	switch {
	case p == nil:
		why = fmt.Sprintf("process %s is not running on agent %s", cmd.GetProcessId(), a.cfg.AgentID)
	case p.status != statusActive || !p.healthy || p.client == nil:
		why = fmt.Sprintf("process %s is %s (healthy=%v) and takes no session", p.id, p.status, p.healthy)
	}
	// p.sessionID may still name the previous session: the server frees the
	// process when it records TerminateGameServerSession, before the agent
	// hears back. The server decides placement; its word wins.
	if why != "" {
		a.mu.Unlock()
		return &croupierv1.StartGameServerSessionResult{ErrorMessage: why}, nil
	}
	p.sessionID, p.sessionStart = g.GetGameServerSessionId(), a.now()
	client, clientPort := p.client, p.clientPort
	a.changedLocked(p)
	a.mu.Unlock()

	props := make([]*grpcsdk.GameProperty, len(g.GetGameProperties()))
	for i, kv := range g.GetGameProperties() {
		props[i] = &grpcsdk.GameProperty{Key: kv.GetKey(), Value: kv.GetValue()}
	}
	resp, err := client.OnStartGameServerSession(ctx, &grpcsdk.StartGameServerSessionRequest{GameServerSession: &grpcsdk.GameServerSession{
		GameServerSessionId: g.GetGameServerSessionId(), FleetId: g.GetFleetId(), Name: g.GetName(),
		MaxPlayers: g.GetMaxPlayers(), Joinable: g.GetPlayerSessionCreationPolicy() != "DENY_ALL",
		GameProperties: props, Port: int32(clientPort), IpAddress: a.cfg.IPAddress,
		GameServerSessionData: g.GetGameServerSessionData(), MatchmakerData: g.GetMatchmakerData(), DnsName: a.cfg.DNSName,
	}})
	if err == nil && resp.GetStatus() == grpcsdk.GseResponse_OK {
		return &croupierv1.StartGameServerSessionResult{Ok: true}, nil
	}
	a.mu.Lock()
	if p.sessionID == g.GetGameServerSessionId() {
		p.sessionID = ""
		a.changedLocked(p)
	}
	a.mu.Unlock()
	msg := resp.GetErrorMessage()
	if err != nil {
		msg = "OnStartGameServerSession: " + status.Convert(err).Message()
	}
	return &croupierv1.StartGameServerSessionResult{ErrorMessage: msg}, nil
}

// StdoutLog is the path name of a process's captured stdout and stderr in
// FetchProcessLog.
const StdoutLog = "stdout"

// FetchProcessLog serves the server's FetchProcessLogCommand. Only the
// files the process declared in ProcessReady.logPathsToUpload (and its
// captured output) can be read; after the process ended, the copies the
// agent collected are read.
func (a *Agent) FetchProcessLog(_ context.Context, cmd *croupierv1.FetchProcessLogCommand) (*croupierv1.FetchProcessLogResult, error) {
	a.mu.Lock()
	p := a.findLocked(cmd.GetProcessId())
	if p == nil {
		a.mu.Unlock()
		return nil, status.Errorf(codes.NotFound, "process %s is unknown to agent %s (or its logs were rotated out)", cmd.GetProcessId(), a.cfg.AgentID)
	}
	path := ""
	var dirs []string // where path must lie after symlinks; nil: a file of the agent's own
	if cmd.GetPath() == StdoutLog {
		path = p.stdoutPath
	} else {
		for i, lp := range p.logPaths {
			if lp == cmd.GetPath() || p.logFiles[i] == cmd.GetPath() {
				path, dirs = p.logFiles[i], a.cfg.BuildDirs
				if p.ended() {
					path, dirs = a.collectedPath(p, i), nil
				}
			}
		}
	}
	declared := append([]string(nil), p.logPaths...)
	a.mu.Unlock()
	if path == "" {
		return nil, status.Errorf(codes.NotFound, "process %s has no log %q; it declared %v (and %q for its output)", cmd.GetProcessId(), cmd.GetPath(), declared, StdoutLog)
	}
	return readChunk(path, dirs, cmd.GetOffset(), int(cmd.GetLimit()))
}

func readChunk(path string, dirs []string, offset int64, limit int) (*croupierv1.FetchProcessLogResult, error) {
	f, err := openLog(path, dirs)
	if err != nil {
		switch {
		case errors.Is(err, os.ErrNotExist):
			return nil, status.Errorf(codes.NotFound, "log %s does not exist", filepath.Base(path))
		case errors.Is(err, errNotRegular):
			return nil, status.Errorf(codes.FailedPrecondition, "log %s: %v", filepath.Base(path), err)
		case errors.Is(err, launchpath.ErrOutside):
			return nil, status.Errorf(codes.PermissionDenied, "log %s: %v", filepath.Base(path), err)
		}
		return nil, status.Errorf(codes.Internal, "open log: %v", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.IsDir() {
		return nil, status.Errorf(codes.FailedPrecondition, "log %s is not a readable file", filepath.Base(path))
	}
	if limit <= 0 {
		limit = 64 << 10
	}
	buf := make([]byte, limit)
	n, err := f.ReadAt(buf, offset)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, status.Errorf(codes.Internal, "read log: %v", err)
	}
	return &croupierv1.FetchProcessLogResult{Data: buf[:n], Size: st.Size(), Eof: offset+int64(n) >= st.Size()}, nil
}

// SyncFleets serves the server's SyncFleetsCommand: the agent fetches its
// fleets soon (not within the command, which would call the server back
// while it waits).
func (a *Agent) SyncFleets(_ context.Context, _ *croupierv1.SyncFleetsCommand) (*croupierv1.SyncFleetsResult, error) {
	kick(a.kickFleets)
	return &croupierv1.SyncFleetsResult{}, nil
}
