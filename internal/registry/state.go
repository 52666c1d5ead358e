package registry

import (
	"cmp"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"google.golang.org/protobuf/proto"
)

// stamped is a descriptor with the registry-wide sequence number of the
// registration that last changed it; the highest stamp wins.
type stamped struct {
	d     *croupierv1.FunctionDescriptor
	stamp uint64
}

// agentState is an agent's registration as stored: a private deep copy that
// is never mutated after it is indexed (an Upsert replaces it wholesale),
// except for the heartbeat time, which is atomic so heartbeats take only
// the read lock.
type agentState struct {
	a Agent // a.LastHeartbeat is unused; see beat
	// beat is the last heartbeat, in Unix nanoseconds.
	beat atomic.Int64
	// served maps each function id to the sorted ids of the instances
	// serving it.
	served map[string][]string
	// descs maps function id to descriptor; stamps are assigned under the
	// lock by Upsert.
	descs map[string]stamped
	// insts are the agent's instances as routes hold them, by instance id.
	// An instance keeps its RouteInstance (and so its in-flight counter)
	// across re-registrations; a counter is forgotten with its instance.
	insts map[string]*RouteInstance
}

// newAgentState deep-copies a so later changes by the caller cannot reach
// the registry (descriptors through copyDesc: the registry's interner, or
// proto.Clone for a copy handed out), precomputes which instances serve
// which function, and carries over prev's RouteInstances for instances that
// are still there.
func newAgentState(a Agent, prev *agentState, copyDesc func(*croupierv1.FunctionDescriptor) *croupierv1.FunctionDescriptor) *agentState {
	c := Agent{
		ID: a.ID, GameID: a.GameID, Env: a.Env, Version: a.Version, Addr: a.Addr,
		Labels:      maps.Clone(a.Labels),
		Instances:   make([]Instance, len(a.Instances)),
		Descriptors: make([]*croupierv1.FunctionDescriptor, len(a.Descriptors)),
	}
	for i, in := range a.Instances {
		c.Instances[i] = Instance{ID: in.ID, Functions: slices.Clone(in.Functions), Labels: maps.Clone(in.Labels), Incarnation: in.Incarnation}
	}
	for i, d := range a.Descriptors {
		c.Descriptors[i] = copyDesc(d)
	}
	c.LastHeartbeat = a.LastHeartbeat
	return indexAgent(c, prev)
}

// indexAgent builds the state of c, which the registry owns (nothing else
// holds its slices or maps), sorting its instances in place.
func indexAgent(c Agent, prev *agentState) *agentState {
	slices.SortFunc(c.Instances, func(x, y Instance) int { return cmp.Compare(x.ID, y.ID) })
	st := &agentState{a: c, served: map[string][]string{}, descs: make(map[string]stamped, len(c.Descriptors)),
		insts: make(map[string]*RouteInstance, len(c.Instances))}
	st.beat.Store(c.LastHeartbeat.UnixNano())
	for _, in := range c.Instances { // sorted, so each list comes out sorted
		for _, fn := range in.Functions {
			if ids := st.served[fn]; len(ids) == 0 || ids[len(ids)-1] != in.ID {
				st.served[fn] = append(ids, in.ID)
			}
		}
		if prev != nil && prev.insts[in.ID] != nil {
			st.insts[in.ID] = prev.insts[in.ID]
		} else {
			ref := InstanceRef{Agent: c.ID, Instance: in.ID}
			st.insts[in.ID] = &RouteInstance{InstanceRef: ref, key: ref.Key(), inflight: new(atomic.Int64)}
		}
	}
	for _, d := range c.Descriptors {
		st.descs[d.GetId()] = stamped{d: d}
	}
	return st
}

// lastHeartbeat returns the agent's last heartbeat time.
func (st *agentState) lastHeartbeat() time.Time { return time.Unix(0, st.beat.Load()) }

// keys returns the registrations this agent contributes to.
func (st *agentState) keys() []fnKey {
	if st == nil {
		return nil
	}
	out := make([]fnKey, 0, len(st.served))
	for fn := range st.served {
		out = append(out, fnKey{st.a.GameID, st.a.Env, fn})
	}
	return out
}

// sameAgentFields reports whether what an agent shows in every
// registration it serves (besides its instances) is unchanged.
func sameAgentFields(a, b *agentState) bool {
	return a.a.Addr == b.a.Addr && a.a.Version == b.a.Version && a.a.GameID == b.a.GameID && a.a.Env == b.a.Env &&
		maps.Equal(a.a.Labels, b.a.Labels)
}

// clone returns a deep copy of the agent for callers.
func (st *agentState) clone() Agent {
	c := newAgentState(st.a, nil, cloneDescriptor).a
	c.LastHeartbeat = st.lastHeartbeat()
	return c
}

func cloneDescriptor(d *croupierv1.FunctionDescriptor) *croupierv1.FunctionDescriptor {
	return proto.Clone(d).(*croupierv1.FunctionDescriptor)
}
