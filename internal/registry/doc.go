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
// # Routing snapshots
//
// Every existing registration has an immutable Route: its winning
// descriptor, enablement, instances sorted by (agent, instance) with their
// keys and in-flight counters precomputed, and a hash ring built on first
// use. Route, Descriptor and Instances read it from a sync.Map without
// taking the registry's lock, so calls never wait for registrations.
//
// A mutation recomputes only the functions its agent touches, and within
// each only that agent's slice of the instance list (a merge of sorted
// lists, O(instances) pointer copies); an agent whose contribution did not
// change — a re-registration with the same instances, labels and
// descriptors — publishes nothing. The winning descriptor is tracked
// incrementally and rescanned only when the agent holding it leaves. A
// counter lives in the instance's RouteInstance: re-registrations keep it,
// and it is forgotten (garbage) with the instance.
//
// # Events
//
// A mutation publishes a change for every registration whose agents, their
// instances or labels, its descriptor or its enablement changed:
//
//   - ADDED when a registration comes into existence;
//   - UPDATED when it changes — including when the last instance goes away
//     but a direct descriptor keeps it alive (it then has no agents);
//   - REMOVED when it ceases to exist; in the whole-registration form the
//     event carries its last state.
//
// Heartbeats never produce events.
//
// # Watching
//
// Watch delivers the matching registrations as ADDED events, one SYNCED
// event without a registration, and then live events. Live events come in
// one of two forms, chosen per watch (WatchOptions.Deltas, the
// WatchRegistrationsRequest.deltas field): whole registrations (the seed's
// shape, and the default) or RegistrationDelta, which names only the agents
// whose entries changed (replace=true carries the whole agent list, for
// ADDED and after a collapse). A delta watch of a ramp of N agents costs
// O(N) bytes; a whole-registration watch costs O(N) per event.
//
// The registry never blocks on a watcher and never cuts one off. A
// mutation records what changed per function in the watcher's pending set
// (bounded by Options.WatchBufferBytes: past it, the set collapses to one
// "resend whole" entry per function); the watcher's own goroutine turns the
// oldest pending function into an event built from the registry's current
// state when the reader is ready for it. So changes a reader has not read
// yet are coalesced: it sees the latest state of each function, not every
// intermediate one, and a function that came and went unseen produces no
// event. Events of one mutation are queued in (game, env, function id)
// order; a function already pending keeps its place in the queue.
//
// Messages returned by queries and carried by events share descriptors
// with the registry and with other watchers; treat them as read-only.
//
// # Locking
//
// One RWMutex guards the working state (agents, per-function state,
// watchers); writers hold it to mutate and publish routes, queries and
// heartbeats take the read side, the call path (Route) none. Each watcher
// has a mutex for its pending set, taken after the registry's. No callback
// runs under either, so callers may hold their own locks while calling the
// registry.
package registry
