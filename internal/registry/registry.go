package registry

import (
	"fmt"
	"slices"
	"sync"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"google.golang.org/protobuf/proto"
)

// Registry is the live registry. It is safe for concurrent use; see the
// package documentation for its semantics.
type Registry struct {
	now         func() time.Time
	watchBuffer int

	mu sync.RWMutex
	// stamp numbers descriptor registrations; see stamped.
	stamp   uint64
	agents  map[string]*agentState
	byScope map[scopeKey]map[string]struct{} // agent ids per scope
	byFn    map[fnKey]map[string]struct{}    // ids of agents serving a function
	direct  map[fnKey]stamped                // PutDescriptor
	// disabled holds functions switched off with SetEnabled; it outlives
	// registrations so a function that comes back stays disabled.
	disabled map[fnKey]struct{}
	// published is the last state announced per registration: the base
	// against which mutations are diffed, and the set of existing keys.
	published map[fnKey]*croupierv1.FunctionRegistration
	watchers  map[*watcher]struct{}
}

// New returns an empty registry.
func New(opts Options) *Registry {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.WatchBuffer <= 0 {
		opts.WatchBuffer = DefaultWatchBuffer
	}
	return &Registry{
		now:         opts.Now,
		watchBuffer: opts.WatchBuffer,
		agents:      map[string]*agentState{},
		byScope:     map[scopeKey]map[string]struct{}{},
		byFn:        map[fnKey]map[string]struct{}{},
		direct:      map[fnKey]stamped{},
		disabled:    map[fnKey]struct{}{},
		published:   map[fnKey]*croupierv1.FunctionRegistration{},
		watchers:    map[*watcher]struct{}{},
	}
}

// Upsert adds an agent or replaces its whole registration (scope, labels,
// instances, descriptors) and emits events for every function whose
// registration changed. It fails with ErrInvalid for a malformed agent.
func (r *Registry) Upsert(a Agent) error {
	if err := validateAgent(&a); err != nil {
		return err
	}
	st := newAgentState(a)
	if st.a.LastHeartbeat.IsZero() {
		st.a.LastHeartbeat = r.now()
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.agents[a.ID]
	for fn, s := range st.descs {
		if old != nil {
			if prev, ok := old.descs[fn]; ok && proto.Equal(prev.d, s.d) {
				st.descs[fn] = prev // unchanged: keep its age (see package doc)
				continue
			}
		}
		r.stamp++
		st.descs[fn] = stamped{d: s.d, stamp: r.stamp}
	}
	if old != nil {
		r.unindex(old)
	}
	r.agents[a.ID] = st
	r.index(st)
	r.publish(append(old.keys(), st.keys()...))
	return nil
}

// Remove drops an agent and emits events for the functions it served. It
// reports whether the agent was registered.
func (r *Registry) Remove(agentID string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	old, ok := r.agents[agentID]
	if !ok {
		return false
	}
	r.unindex(old)
	delete(r.agents, agentID)
	r.publish(old.keys())
	return true
}

// Heartbeat records that an agent was alive at at (Options.Now() when
// zero). Heartbeats only move forward and emit no events. It returns an
// error wrapping ErrNotFound for an unknown agent.
func (r *Registry) Heartbeat(agentID string, at time.Time) error {
	if at.IsZero() {
		at = r.now()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st, ok := r.agents[agentID]
	if !ok {
		return fmt.Errorf("agent %q is not registered: %w", agentID, ErrNotFound)
	}
	if at.After(st.a.LastHeartbeat) {
		st.a.LastHeartbeat = at
	}
	return nil
}

// Expired returns, sorted, the ids of agents whose last heartbeat is
// before the given time. The caller decides whether to Remove them.
func (r *Registry) Expired(before time.Time) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []string
	for id, st := range r.agents {
		if st.a.LastHeartbeat.Before(before) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// PutDescriptor registers a function directly (RegisterFunction): it exists
// in game/env even with no instance serving it, and d becomes its
// descriptor if it is the most recent registration. Putting an unchanged
// descriptor again is a no-op. It fails with ErrInvalid when game, env or
// d's id is empty; validate contents with schema.ValidateDescriptor first.
func (r *Registry) PutDescriptor(game, env string, d *croupierv1.FunctionDescriptor) error {
	if err := validateDirect(game, env, d); err != nil {
		return err
	}
	d = proto.Clone(d).(*croupierv1.FunctionDescriptor)
	k := fnKey{game, env, d.GetId()}

	r.mu.Lock()
	defer r.mu.Unlock()
	if prev, ok := r.direct[k]; ok && proto.Equal(prev.d, d) {
		return nil
	}
	r.stamp++
	r.direct[k] = stamped{d: d, stamp: r.stamp}
	r.publish([]fnKey{k})
	return nil
}

// DeleteDescriptor removes a directly registered descriptor. The function
// remains while instances serve it. It reports whether one was present.
func (r *Registry) DeleteDescriptor(game, env, fn string) bool {
	k := fnKey{game, env, fn}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.direct[k]; !ok {
		return false
	}
	delete(r.direct, k)
	r.publish([]fnKey{k})
	return true
}

// SetEnabled records the function's assignment enablement, reported as
// FunctionRegistration.enabled (true unless set otherwise). A change emits
// UPDATED for an existing registration. The setting is kept for functions
// that are not (or no longer) registered.
func (r *Registry) SetEnabled(game, env, fn string, enabled bool) {
	k := fnKey{game, env, fn}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, was := r.disabled[k]; was != enabled {
		return // unchanged: was disabled and stays so, or vice versa
	}
	if enabled {
		delete(r.disabled, k)
	} else {
		r.disabled[k] = struct{}{}
	}
	r.publish([]fnKey{k})
}

// index adds st to the lookup maps. Callers hold the write lock.
func (r *Registry) index(st *agentState) {
	sk := scopeKey{st.a.GameID, st.a.Env}
	addToSet(r.byScope, sk, st.a.ID)
	for _, k := range st.keys() {
		addToSet(r.byFn, k, st.a.ID)
	}
}

// unindex removes st from the lookup maps. Callers hold the write lock.
func (r *Registry) unindex(st *agentState) {
	removeFromSet(r.byScope, scopeKey{st.a.GameID, st.a.Env}, st.a.ID)
	for _, k := range st.keys() {
		removeFromSet(r.byFn, k, st.a.ID)
	}
}

func addToSet[K comparable](m map[K]map[string]struct{}, k K, id string) {
	set, ok := m[k]
	if !ok {
		set = map[string]struct{}{}
		m[k] = set
	}
	set[id] = struct{}{}
}

func removeFromSet[K comparable](m map[K]map[string]struct{}, k K, id string) {
	if set, ok := m[k]; ok {
		delete(set, id)
		if len(set) == 0 {
			delete(m, k)
		}
	}
}
