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
//     node", read against the live nodes; and a KV bucket (PresenceBucket,
//     entries live DeadAfter) of each node's stream count per room
//     (presence.go), for online_count across the cluster.
//
// Node implements rooms.Bus: a room's events are appended to the log
// with the room's lock held, and one follower per node (follow.go)
// delivers the log, in order, to rooms.Service.Deliver. The follower
// keeps a cursor (the next stream sequence) and, when its consumer fails
// (NATS restarted, the consumer's server died, a message lost in flight),
// creates a new one at the cursor; Deliver drops what a room has already
// applied, so a node catches up and never applies an event twice.
//
// Riding through elections (retry.go): while a raft group of the stream
// or a bucket elects a leader, requests go unanswered. Every request the
// Node makes is repeated with backoff until answered or its bound
// (Config.PublishTimeout, or the caller's deadline) passes; repeating is
// safe because an append carries its event_id as the message id.
//
// `croupier gateway --nats embedded|external` runs a Node
// (internal/cli/gatewaycluster.go); tests and bench/cluster/gateway
// assemble it in-process the same way.
//
// Goroutines: Start starts the follower, the heartbeat loop and the
// presence writer and watcher (owned by the Node, stopped and waited for
// by Close). Each SyncEvents call owns
// one follower, stopped and waited for when the call ends.
package roomcluster
