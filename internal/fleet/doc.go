// Package fleet is the server side of the fleet plane: fleets, game server
// sessions placed on agent-supervised processes, player sessions, and the
// placement queue, in the model of Tencent GSE (and AWS GameLift, which GSE
// mirrors). The agent side — the GSE endpoint game processes call, health
// checks and process supervision — is internal/gse.
//
// Layers:
//
//	FleetService (grpc.go)        operators and game backends, gRPC + REST
//	FleetAgentService (agentapi.go) agents: process reports and the GSE calls
//	                                of game processes that need the server
//	Service (service.go, ...)     the logic; knows no transport
//	store                         fleets, processes, sessions, player sessions,
//	                                placements (SQLite or PostgreSQL)
//	AgentDispatcher               server -> agent commands, over the tunnel
//
// The database is the source of truth and every state change is a
// compare-and-set there, so several server nodes can serve the same fleets:
// placement claims a free process and inserts the session in one
// transaction; a join checks capacity and counts the seat in one statement;
// timeouts are found by deadline columns and applied with the same CAS, so
// two nodes sweeping at once change each row once.
//
// Session lifecycle:
//
//	Create -> ACTIVATING --(process ActivateGameServerSession)--> ACTIVE
//	ACTIVATING --(activation timeout)--> TERMINATED (ACTIVATION_TIMEOUT), process ended
//	ACTIVATING --(OnStartGameServerSession refused)--> ERROR (ACTIVATION_FAILED)
//	ACTIVE --(operator terminate)--> TERMINATING --(process ends it or exits)--> TERMINATED
//	any live --(process TerminateGameServerSession)--> TERMINATED, process free again
//	any live --(process crashed)--> TERMINATED (INTERRUPTED)
//
// Player sessions: Join -> RESERVED --(AcceptPlayerSession)--> ACTIVE
// --(RemovePlayerSession)--> COMPLETED; RESERVED past the reservation
// timeout -> TIMEDOUT; the end of the game server session completes them.
package fleet
