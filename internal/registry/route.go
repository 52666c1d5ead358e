package registry

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/routing"
)

// Route is the immutable routing snapshot of one function registration:
// what the invoke path needs, precomputed, so a call reads it without a
// lock and in time independent of the fleet (except broadcast, which walks
// Instances). A change to the registration publishes a new Route; holders
// of an old one keep a consistent, slightly stale view.
type Route struct {
	Game, Env, Function string
	// Descriptor is the winning descriptor (see the package doc); shared,
	// do not modify.
	Descriptor *croupierv1.FunctionDescriptor
	Enabled    bool
	// Instances serve the function, sorted by agent id, then instance id.
	// Shared: do not modify.
	Instances []*RouteInstance
	// ring is shared between routes with the same Instances.
	ring *lazyRing
}

// RouteInstance is an instance as routes hold it: its name, its global key
// and its in-flight counter, which lives exactly as long as the instance's
// registration.
type RouteInstance struct {
	InstanceRef
	key      string
	inflight *atomic.Int64
}

// Key returns "agent/instance", computed once.
func (ri *RouteInstance) Key() string { return ri.key }

// InFlight returns the number of calls in flight on the instance.
func (ri *RouteInstance) InFlight() int64 { return ri.inflight.Load() }

// Begin records a call starting on the instance; call End when it ends.
func (ri *RouteInstance) Begin() { ri.inflight.Add(1) }

// End records a call on the instance ending.
func (ri *RouteInstance) End() { ri.inflight.Add(-1) }

// lazyRing builds a route's hash ring on first use: most functions are
// never called in hash mode, and a ring costs ~2 ms per 100 members.
type lazyRing struct {
	once sync.Once
	r    *routing.Ring
	// byKey holds the instances in key order: the ring's member order.
	byKey []*RouteInstance
}

// Ring returns the consistent-hash ring over the route's instance keys,
// built once per membership.
func (rt *Route) Ring() *routing.Ring {
	rt.ring.once.Do(func() {
		keys := make([]string, len(rt.Instances))
		for i, in := range rt.Instances {
			keys[i] = in.key
		}
		rt.ring.r = routing.NewRing(keys, routing.DefaultVirtualNodes)
		rt.ring.byKey = slices.Clone(rt.Instances)
		slices.SortFunc(rt.ring.byKey, func(a, b *RouteInstance) int { return cmp.Compare(a.key, b.key) })
	})
	return rt.ring.r
}

// Owner returns the instance that owns hashKey on the route's ring.
func (rt *Route) Owner(hashKey string) (*RouteInstance, bool) {
	i, ok := rt.Ring().Index(hashKey)
	if !ok {
		return nil, false
	}
	return rt.ring.byKey[i], true
}

// Route returns the routing snapshot of a registered function, without
// taking a lock.
func (r *Registry) Route(game, env, fn string) (*Route, bool) {
	v, ok := r.routes.Load(fnKey{game, env, fn})
	if !ok {
		return nil, false
	}
	return v.(*Route), true
}

// fnState is the registry's working state for one function key. It exists
// while an agent serves the function or a direct descriptor is put.
// Guarded by the registry's write lock.
type fnState struct {
	key fnKey
	// agents serving the function.
	agents map[string]*agentState
	// best is the agent with the highest descriptor stamp for the
	// function, nil when none of them has a descriptor for it.
	best *agentState
	// route is the published snapshot; nil while unpublished.
	route *Route
	// placeholder is the descriptor of a function served without one.
	placeholder *croupierv1.FunctionDescriptor
}

func (fs *fnState) bestStamp() uint64 {
	if fs.best == nil {
		return 0
	}
	return fs.best.descs[fs.key.fn].stamp
}

// rescanBest finds the agent with the newest descriptor: O(agents), only
// needed when the previous best one stops serving or loses its descriptor.
func (fs *fnState) rescanBest() {
	fs.best = nil
	for _, st := range fs.agents {
		if s, ok := st.descs[fs.key.fn]; ok && (fs.best == nil || s.stamp > fs.bestStamp()) {
			fs.best = st
		}
	}
}

// descriptor picks the winner among the direct descriptor and the best
// agent's.
func (fs *fnState) descriptor(direct stamped, hasDirect bool) *croupierv1.FunctionDescriptor {
	if fs.best != nil && (!hasDirect || fs.bestStamp() > direct.stamp) {
		return fs.best.descs[fs.key.fn].d
	}
	if hasDirect {
		return direct.d
	}
	if fs.placeholder == nil {
		fs.placeholder = &croupierv1.FunctionDescriptor{Id: fs.key.fn}
	}
	return fs.placeholder
}

// spliceInstances returns prev with the instances of the agents in changed
// replaced by their current ones. prev is sorted by agent, so each changed
// agent's range is found by binary search and the rest is block-copied:
// O(changed·log n) comparisons plus one memmove of n pointers.
func (fs *fnState) spliceInstances(prev []*RouteInstance, changed map[string]struct{}) []*RouteInstance {
	ids := make([]string, 0, len(changed))
	added := 0
	for id := range changed {
		ids = append(ids, id)
		if st := fs.agents[id]; st != nil {
			added += len(st.served[fs.key.fn])
		}
	}
	slices.Sort(ids)
	out := make([]*RouteInstance, 0, len(prev)+added)
	rest := prev
	for _, id := range ids {
		lo, _ := slices.BinarySearchFunc(rest, id, func(ri *RouteInstance, id string) int { return cmp.Compare(ri.Agent, id) })
		hi := lo
		for hi < len(rest) && rest[hi].Agent == id {
			hi++
		}
		out = append(out, rest[:lo]...)
		if st := fs.agents[id]; st != nil {
			for _, in := range st.served[fs.key.fn] { // sorted
				out = append(out, st.insts[in])
			}
		}
		rest = rest[hi:]
	}
	return append(out, rest...)
}
