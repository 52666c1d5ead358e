package registry

import (
	"fmt"
	"maps"
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
	changed     func(agentID string)

	// routes maps fnKey to the published *Route of every existing
	// registration. Written under mu, read without it.
	routes sync.Map

	mu sync.RWMutex
	// stamp numbers descriptor registrations; see stamped.
	stamp   uint64
	agents  map[string]*agentState
	byScope map[scopeKey]map[string]struct{} // agent ids per scope
	fns     map[fnKey]*fnState
	direct  map[fnKey]stamped // PutDescriptor
	// disabled holds functions switched off with SetEnabled; it outlives
	// registrations so a function that comes back stays disabled.
	disabled map[fnKey]struct{}
	watchers map[*watcher]struct{}

	// descs holds agents' descriptors, one copy per distinct content.
	descs interner
}

// New returns an empty registry.
func New(opts Options) *Registry {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.WatchBufferBytes <= 0 {
		opts.WatchBufferBytes = DefaultWatchBufferBytes
	}
	if opts.Changed == nil {
		opts.Changed = func(string) {}
	}
	return &Registry{
		changed:     opts.Changed,
		now:         opts.Now,
		watchBuffer: opts.WatchBufferBytes,
		agents:      map[string]*agentState{},
		byScope:     map[scopeKey]map[string]struct{}{},
		fns:         map[fnKey]*fnState{},
		direct:      map[fnKey]stamped{},
		disabled:    map[fnKey]struct{}{},
		watchers:    map[*watcher]struct{}{},
	}
}

// change is what one mutation did to one registration.
type change struct {
	// agents whose entry in the registration (instances or agent fields)
	// changed, were added or left.
	agents map[string]struct{}
	// instances is the subset of agents whose instance list changed.
	instances map[string]struct{}
	// left is the agent that stopped serving the function, if any: the
	// last state of a registration that ceases to exist names it.
	left *agentState
}

// changeSet collects the changes of one mutation.
type changeSet map[fnKey]*change

func (cs changeSet) at(k fnKey) *change {
	c := cs[k]
	if c == nil {
		c = &change{}
		cs[k] = c
	}
	return c
}

func (c *change) touch(id string, instances bool) {
	if c.agents == nil {
		c.agents = map[string]struct{}{}
	}
	c.agents[id] = struct{}{}
	if instances {
		if c.instances == nil {
			c.instances = map[string]struct{}{}
		}
		c.instances[id] = struct{}{}
	}
}

// Upsert adds an agent or replaces its whole registration (scope, labels,
// instances, descriptors) and emits events for every function whose
// registration changed. Only the functions the agent's change touches are
// recomputed, each in time linear in its own instances; an unchanged
// re-registration costs O(the agent's functions). It fails with ErrInvalid
// for a malformed agent.
func (r *Registry) Upsert(a Agent) error {
	if err := validateAgent(&a); err != nil {
		return err
	}
	if a.LastHeartbeat.IsZero() {
		a.LastHeartbeat = r.now()
	}

	defer r.changed(a.ID) // runs after the unlock below
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.agents[a.ID]
	r.install(old, newAgentState(a, old, r.descs.intern))
	return nil
}

// UpdateInstances changes some of a registered agent's instances: upsert
// adds or replaces instances by id, remove drops ids, descs adds or
// replaces descriptors. The rest of the registration is kept as is, so the
// cost follows the change (plus one pass over the agent's instance list),
// not a full re-registration. It returns an error wrapping ErrNotFound for
// an unknown agent and ErrInvalid for a malformed change.
func (r *Registry) UpdateInstances(agentID string, upsert []Instance, remove []string, descs []*croupierv1.FunctionDescriptor) error {
	defer r.changed(agentID)
	r.mu.Lock()
	defer r.mu.Unlock()
	old, ok := r.agents[agentID]
	if !ok {
		return fmt.Errorf("agent %q is not registered: %w", agentID, ErrNotFound)
	}
	drop := make(map[string]struct{}, len(remove)+len(upsert))
	for _, id := range remove {
		drop[id] = struct{}{}
	}
	for _, in := range upsert {
		drop[in.ID] = struct{}{}
	}
	a := old.a // its slices are private and never mutated: share them
	a.Instances = make([]Instance, 0, len(old.a.Instances)+len(upsert))
	for _, in := range old.a.Instances {
		if _, gone := drop[in.ID]; !gone {
			a.Instances = append(a.Instances, in)
		}
	}
	for _, in := range upsert {
		a.Instances = append(a.Instances, Instance{ID: in.ID, Functions: slices.Clone(in.Functions), Labels: maps.Clone(in.Labels), Incarnation: in.Incarnation})
	}
	a.Descriptors = slices.Clone(old.a.Descriptors)
	for _, d := range descs {
		d = r.descs.intern(d)
		if i := slices.IndexFunc(a.Descriptors, func(x *croupierv1.FunctionDescriptor) bool { return x.GetId() == d.GetId() }); i >= 0 {
			a.Descriptors[i] = d
		} else {
			a.Descriptors = append(a.Descriptors, d)
		}
	}
	a.LastHeartbeat = old.lastHeartbeat()
	if err := validateAgent(&a); err != nil {
		return err
	}
	r.install(old, indexAgent(a, old))
	return nil
}

// install replaces old (nil for a new agent) with st: stamps descriptors,
// updates the indexes, publishes what changed. Callers hold the write lock.
func (r *Registry) install(old, st *agentState) {
	for fn, s := range st.descs {
		if old != nil {
			if prev, ok := old.descs[fn]; ok && (prev.d == s.d || proto.Equal(prev.d, s.d)) {
				st.descs[fn] = prev // unchanged: keep its age (see package doc)
				continue
			}
		}
		r.stamp++
		st.descs[fn] = stamped{d: s.d, stamp: r.stamp}
	}
	if old != nil && old.beat.Load() > st.beat.Load() {
		st.beat.Store(old.beat.Load()) // heartbeats only move forward
	}
	if old != nil {
		removeFromSet(r.byScope, scopeKey{old.a.GameID, old.a.Env}, old.a.ID)
	}
	addToSet(r.byScope, scopeKey{st.a.GameID, st.a.Env}, st.a.ID)
	r.agents[st.a.ID] = st
	r.commit(r.replaceAgent(old, st))
}

// Remove drops an agent and emits events for the functions it served. It
// reports whether the agent was registered.
func (r *Registry) Remove(agentID string) bool {
	defer r.changed(agentID)
	r.mu.Lock()
	defer r.mu.Unlock()
	old, ok := r.agents[agentID]
	if !ok {
		return false
	}
	removeFromSet(r.byScope, scopeKey{old.a.GameID, old.a.Env}, agentID)
	delete(r.agents, agentID)
	r.commit(r.replaceAgent(old, nil))
	return true
}

// replaceAgent swaps old for st (either may be nil) in the states of the
// functions they serve and returns what changed. Callers hold the write
// lock.
func (r *Registry) replaceAgent(old, st *agentState) changeSet {
	cs := changeSet{}
	var id string
	if st != nil {
		id = st.a.ID
	} else {
		id = old.a.ID
	}
	fieldsChanged := old == nil || st == nil || !sameAgentFields(old, st)
	for _, k := range old.keys() {
		if st != nil && st.a.GameID == k.game && st.a.Env == k.env && len(st.served[k.fn]) > 0 {
			continue // still served: handled below
		}
		fs := r.fns[k]
		delete(fs.agents, id)
		if fs.best == old {
			fs.rescanBest()
		}
		c := cs.at(k)
		c.touch(id, true)
		c.left = old
	}
	for _, k := range st.keys() {
		fs := r.fns[k]
		if fs == nil {
			fs = &fnState{key: k, agents: map[string]*agentState{}}
			r.fns[k] = fs
		}
		var prev *agentState
		if old != nil && old.a.GameID == k.game && old.a.Env == k.env && len(old.served[k.fn]) > 0 {
			prev = old
		}
		fs.agents[id] = st
		instChanged := prev == nil || !slices.Equal(prev.served[k.fn], st.served[k.fn])
		if fieldsChanged || instChanged {
			cs.at(k).touch(id, instChanged)
		}
		s, has := st.descs[k.fn]
		switch {
		case fs.best == prev && prev != nil:
			if has && s.stamp >= prev.descs[k.fn].stamp {
				fs.best = st
			} else {
				fs.rescanBest()
			}
		case has && (fs.best == nil || s.stamp > fs.bestStamp()):
			fs.best = st
		}
		if prev != nil && prev.descs[k.fn].stamp != s.stamp {
			cs.at(k) // the descriptor may have changed
		} else if prev == nil && has {
			cs.at(k)
		}
	}
	return cs
}

// Heartbeat records that an agent was alive at at (Options.Now() when
// zero). Heartbeats only move forward, emit no events and take only the
// read lock. It returns an error wrapping ErrNotFound for an unknown agent.
func (r *Registry) Heartbeat(agentID string, at time.Time) error {
	if at.IsZero() {
		at = r.now()
	}
	r.mu.RLock()
	st, ok := r.agents[agentID]
	r.mu.RUnlock()
	if !ok {
		return fmt.Errorf("agent %q is not registered: %w", agentID, ErrNotFound)
	}
	ns := at.UnixNano()
	for {
		cur := st.beat.Load()
		if ns <= cur || st.beat.CompareAndSwap(cur, ns) {
			return nil
		}
	}
}

// Expired returns, sorted, the ids of agents whose last heartbeat is
// before the given time. The caller decides whether to Remove them.
func (r *Registry) Expired(before time.Time) []string {
	ns := before.UnixNano()
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []string
	for id, st := range r.agents {
		if st.beat.Load() < ns {
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
	if r.fns[k] == nil {
		r.fns[k] = &fnState{key: k, agents: map[string]*agentState{}}
	}
	r.commit(changeSet{k: {}})
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
	r.commit(changeSet{k: {}})
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
	if r.fns[k] != nil {
		r.commit(changeSet{k: {}})
	}
}

// commit publishes new routes for the changed functions, in key order, and
// tells the interested watchers what changed. Callers hold the write lock,
// which is what orders changes like the mutations that caused them.
func (r *Registry) commit(cs changeSet) {
	keys := make([]fnKey, 0, len(cs))
	for k := range cs {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareKeys)
	for _, k := range keys {
		c := cs[k]
		fs := r.fns[k]
		if fs == nil {
			continue
		}
		direct, hasDirect := r.direct[k]
		prev := fs.route
		if len(fs.agents) == 0 && !hasDirect {
			delete(r.fns, k)
			if prev != nil {
				r.routes.Delete(k)
				r.notify(k, c, false, func() *croupierv1.FunctionRegistration { return lastState(prev, c.left) })
			}
			continue
		}
		_, disabled := r.disabled[k]
		rt := &Route{Game: k.game, Env: k.env, Function: k.fn, Descriptor: fs.descriptor(direct, hasDirect), Enabled: !disabled}
		descChanged := prev == nil || (prev.Descriptor != rt.Descriptor && !proto.Equal(prev.Descriptor, rt.Descriptor))
		switch {
		case prev == nil:
			rt.Instances, rt.ring = fs.spliceInstances(nil, c.instances), &lazyRing{}
		case len(c.instances) > 0:
			rt.Instances, rt.ring = fs.spliceInstances(prev.Instances, c.instances), &lazyRing{}
		default:
			rt.Instances, rt.ring = prev.Instances, prev.ring
		}
		fs.route = rt
		r.routes.Store(k, rt)
		if prev == nil || descChanged || prev.Enabled != rt.Enabled || len(c.agents) > 0 {
			r.notify(k, c, descChanged, nil)
		}
	}
}

// lastState is a removed registration as it was, for REMOVED events of
// whole-registration watchers: its last agent (if one left) and descriptor.
func lastState(rt *Route, left *agentState) *croupierv1.FunctionRegistration {
	reg := &croupierv1.FunctionRegistration{FunctionId: rt.Function, GameId: rt.Game, Env: rt.Env, Descriptor_: rt.Descriptor, Enabled: rt.Enabled}
	if left != nil {
		reg.Agents = []*croupierv1.AgentInfo{agentInfo(left, left.served[rt.Function])}
	}
	return reg
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
