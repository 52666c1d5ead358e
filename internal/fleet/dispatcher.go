package fleet

import (
	"context"
	"fmt"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
)

// AgentDispatcher sends commands to agents. The server implementation is
// TunnelDispatcher (the agents' reverse-RPC tunnel); tests and `croupier
// dev` may use LocalDispatcher to reach in-process agents.
type AgentDispatcher interface {
	// StartGameServerSession hands a session to a process
	// (OnStartGameServerSession) and returns the process's answer.
	StartGameServerSession(ctx context.Context, agentID string, cmd *croupierv1.StartGameServerSessionCommand) (*croupierv1.StartGameServerSessionResult, error)
	// TerminateProcess ends a process (OnProcessTerminate, or a kill).
	TerminateProcess(ctx context.Context, agentID string, cmd *croupierv1.TerminateProcessCommand) error
	// FetchProcessLog reads a process's log file on its agent.
	FetchProcessLog(ctx context.Context, agentID string, cmd *croupierv1.FetchProcessLogCommand) (*croupierv1.FetchProcessLogResult, error)
	// SyncFleets tells the agents of a scope that its fleets changed; best
	// effort (agents also poll GetAgentFleets).
	SyncFleets(ctx context.Context, gameID, env string)
}

// Caller is the part of the tunnel server TunnelDispatcher needs;
// *tunnel.Server satisfies it.
type Caller interface {
	Call(ctx context.Context, client string, req proto.Message) (proto.Message, error)
}

// TunnelDispatcher sends commands over the agents' tunnel: each command is
// a tunnel request to the client named by the agent id.
type TunnelDispatcher struct {
	Tunnel Caller
	// Broadcast, when set, sends req to every connected agent (e.g. a
	// wrapper of tunnel.Server.CallAll); SyncFleets uses it.
	Broadcast func(ctx context.Context, req proto.Message)
}

var _ AgentDispatcher = (*TunnelDispatcher)(nil)

// StartGameServerSession implements AgentDispatcher.
func (d *TunnelDispatcher) StartGameServerSession(ctx context.Context, agentID string, cmd *croupierv1.StartGameServerSessionCommand) (*croupierv1.StartGameServerSessionResult, error) {
	return call[*croupierv1.StartGameServerSessionResult](ctx, d.Tunnel, agentID, cmd)
}

// TerminateProcess implements AgentDispatcher.
func (d *TunnelDispatcher) TerminateProcess(ctx context.Context, agentID string, cmd *croupierv1.TerminateProcessCommand) error {
	_, err := call[*croupierv1.TerminateProcessResult](ctx, d.Tunnel, agentID, cmd)
	return err
}

// FetchProcessLog implements AgentDispatcher.
func (d *TunnelDispatcher) FetchProcessLog(ctx context.Context, agentID string, cmd *croupierv1.FetchProcessLogCommand) (*croupierv1.FetchProcessLogResult, error) {
	return call[*croupierv1.FetchProcessLogResult](ctx, d.Tunnel, agentID, cmd)
}

// SyncFleets implements AgentDispatcher.
func (d *TunnelDispatcher) SyncFleets(ctx context.Context, gameID, env string) {
	if d.Broadcast != nil {
		d.Broadcast(ctx, &croupierv1.SyncFleetsCommand{GameId: gameID, Env: env})
	}
}

func call[Resp proto.Message](ctx context.Context, c Caller, agent string, req proto.Message) (Resp, error) {
	var zero Resp
	out, err := c.Call(ctx, agent, req)
	if err != nil {
		return zero, err
	}
	resp, ok := out.(Resp)
	if !ok {
		return zero, status.Errorf(codes.Internal, "agent %s answered %T with %T", agent, req, out)
	}
	return resp, nil
}

// AgentCommands is what an agent serves to the server; *gse.Agent
// implements it, and the tunnel handlers the agent registers call it.
type AgentCommands interface {
	StartGameServerSession(ctx context.Context, cmd *croupierv1.StartGameServerSessionCommand) (*croupierv1.StartGameServerSessionResult, error)
	TerminateProcess(ctx context.Context, cmd *croupierv1.TerminateProcessCommand) (*croupierv1.TerminateProcessResult, error)
	FetchProcessLog(ctx context.Context, cmd *croupierv1.FetchProcessLogCommand) (*croupierv1.FetchProcessLogResult, error)
	SyncFleets(ctx context.Context, cmd *croupierv1.SyncFleetsCommand) (*croupierv1.SyncFleetsResult, error)
}

// LocalDispatcher reaches agents in the same process, by agent id.
type LocalDispatcher struct {
	mu     sync.RWMutex
	agents map[string]AgentCommands
}

var _ AgentDispatcher = (*LocalDispatcher)(nil)

// NewLocalDispatcher returns a dispatcher with no agents.
func NewLocalDispatcher() *LocalDispatcher {
	return &LocalDispatcher{agents: map[string]AgentCommands{}}
}

// Set adds or replaces agent id; a nil a removes it.
func (d *LocalDispatcher) Set(id string, a AgentCommands) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if a == nil {
		delete(d.agents, id)
		return
	}
	d.agents[id] = a
}

func (d *LocalDispatcher) get(id string) (AgentCommands, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	a, ok := d.agents[id]
	if !ok {
		return nil, status.Error(codes.Unavailable, fmt.Sprintf("agent %s is not connected", id))
	}
	return a, nil
}

// StartGameServerSession implements AgentDispatcher.
func (d *LocalDispatcher) StartGameServerSession(ctx context.Context, agentID string, cmd *croupierv1.StartGameServerSessionCommand) (*croupierv1.StartGameServerSessionResult, error) {
	a, err := d.get(agentID)
	if err != nil {
		return nil, err
	}
	return a.StartGameServerSession(ctx, cmd)
}

// TerminateProcess implements AgentDispatcher.
func (d *LocalDispatcher) TerminateProcess(ctx context.Context, agentID string, cmd *croupierv1.TerminateProcessCommand) error {
	a, err := d.get(agentID)
	if err != nil {
		return err
	}
	_, err = a.TerminateProcess(ctx, cmd)
	return err
}

// FetchProcessLog implements AgentDispatcher.
func (d *LocalDispatcher) FetchProcessLog(ctx context.Context, agentID string, cmd *croupierv1.FetchProcessLogCommand) (*croupierv1.FetchProcessLogResult, error) {
	a, err := d.get(agentID)
	if err != nil {
		return nil, err
	}
	return a.FetchProcessLog(ctx, cmd)
}

// SyncFleets implements AgentDispatcher: every local agent is told.
func (d *LocalDispatcher) SyncFleets(ctx context.Context, gameID, env string) {
	d.mu.RLock()
	agents := make([]AgentCommands, 0, len(d.agents))
	for _, a := range d.agents {
		agents = append(agents, a)
	}
	d.mu.RUnlock()
	for _, a := range agents {
		_, _ = a.SyncFleets(ctx, &croupierv1.SyncFleetsCommand{GameId: gameID, Env: env})
	}
}
