// Package gse is the agent side of the fleet plane: the GSE-compatible
// endpoint game processes call (GseGrpcSdkService on 127.0.0.1:5758), the
// callbacks the agent makes on them (GameServerGrpcSdkService on each
// process's grpcPort), health checks, and the supervision of game-server
// processes launched from a fleet's runtime configuration.
//
// A game server written for Tencent GSE runs unchanged: it calls
// ProcessReady with its ports, receives OnStartGameServerSession and
// activates the session from inside that callback, accepts and removes
// players, and ends with ProcessEnding. Every call must carry the gRPC
// metadata pid and requestId.
//
// The agent is the authority on processes; the fleet server (internal/fleet)
// is the authority on sessions and player sessions. The agent reports
// processes to the server and forwards the session calls of its processes
// through Upstream, and serves the server's commands (AgentCommands:
// start a session on a process, end a process, read a log) that arrive over
// the tunnel. Neither direction holds a lock across a call, which is what
// makes the re-entrant calls of GSE's samples work.
//
// Locking: Agent.mu guards the process table and the supervisor's slots.
// It is never held across a gRPC call, a process launch or file I/O other
// than reading /proc.
package gse
