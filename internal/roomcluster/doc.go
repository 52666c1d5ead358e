// Package roomcluster runs the rooms system (internal/rooms) on several
// gateway nodes over NATS, and serves SyncTV's ClusterService and
// DataSyncService (../shared/seeds/synctv-api.md §9.2, §9.4) between them
// (docs/cluster.md, "Gateway tier").
//
// What NATS holds:
//   - the room event log: a JetStream stream (StreamName) with one subject
//     per room (synctv.rooms.<room_id>); each message is a ClusterEvent
//     whose event_id is the JetStream message id, so an event published
//     twice within the duplicate window is stored once. A room's seq is
//     the stream sequence of its events: increasing per room, with gaps.
//   - membership: a KV bucket (NodesBucket) whose entries live DeadAfter
//     after the node's last heartbeat;
//   - who is online where: a KV bucket (OnlineBucket), user id -> "room
//     node", read against the live nodes.
//
// Node implements rooms.Bus: a room's events are appended to the log
// with the room's lock held, and one ordered consumer per node delivers
// the log, in order, to rooms.Service.Deliver. The ordered consumer
// resumes after the last sequence it delivered when the connection to
// NATS comes back, and Deliver drops what a room has already applied, so
// a node catches up and never applies an event twice.
//
// Not built yet: `croupier gateway` does not start a Node (no flags for
// it); tests and bench/cluster/gateway assemble it in-process
// (docs/cluster.md, "Not built yet (gateway tier)").
//
// Goroutines: Start starts the consumer (owned by nats.go, stopped by
// Close) and the heartbeat loop (owned by the Node, stopped by Close).
// Each SyncEvents call owns one ordered consumer, stopped when the call
// ends.
package roomcluster
