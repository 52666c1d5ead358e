// Package registry is the live, in-memory registry of agents, their
// game-server instances and the functions those instances serve, plus
// functions registered directly (RegisterFunction). It answers the invoke
// path's questions (which descriptor, which instances) and feeds
// GetRegistrations, ListAgents and WatchRegistrations.
//
// # Function registrations
//
// A registration is keyed by (game, env, function id). It exists while at
// least one instance of an agent in that scope serves the function, or a
// descriptor was put directly with PutDescriptor. Its agents are the agents
// with at least one instance serving it, each listing those instances.
//
// Its descriptor is the most recently registered one among the direct
// descriptor and the descriptors of the agents serving it ("latest
// registration wins"). Re-registering an unchanged descriptor does not make
// it newer, so agents reconnecting with an old version do not override a
// newer one that another agent or an operator registered. When the agent
// whose descriptor won goes away, the next most recent takes over. A
// function served without any descriptor gets a minimal one holding only
// its id, so "the function exists" and "Descriptor reports ok" coincide.
//
// # Events
//
// Every mutation recomputes the registrations it touches and compares them
// with what was last published, ignoring heartbeat times:
//
//   - ADDED when a registration comes into existence;
//   - UPDATED when its agents, their instances or labels, its descriptor or
//     its enablement change — including when the last instance goes away
//     but a direct descriptor keeps it alive (it then has no agents);
//   - REMOVED when it ceases to exist; the event carries its last state.
//
// Heartbeats never produce events. Events of one mutation are ordered by
// (game, env, function id); mutations are ordered as they took the lock.
//
// # Watching
//
// Watch delivers the matching registrations as ADDED events, one SYNCED
// event without a registration, and then live events, in order. The
// registry never blocks on a watcher: events are handed over with a
// non-blocking send while the lock is held, and a watcher whose buffer is
// full is cut off — its channel is closed while its context is still live.
// A caller that sees the channel close with ctx.Err() == nil has lost events
// and must watch again (it receives a fresh snapshot).
//
// Messages returned by queries and carried by events share descriptors
// with the registry and with other watchers; treat them as read-only.
//
// # Locking
//
// One RWMutex guards all state. No callback runs under it, so callers may
// hold their own locks while calling the registry.
package registry
