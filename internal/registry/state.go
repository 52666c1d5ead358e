package registry

import (
	"cmp"
	"maps"
	"slices"

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
// except for the heartbeat time, which is written under the write lock.
type agentState struct {
	a Agent
	// served maps each function id to the sorted ids of the instances
	// serving it.
	served map[string][]string
	// descs maps function id to descriptor; stamps are assigned under the
	// lock by Upsert.
	descs map[string]stamped
}

// newAgentState deep-copies a so later changes by the caller cannot reach
// the registry, and precomputes which instances serve which function.
func newAgentState(a Agent) *agentState {
	c := Agent{
		ID: a.ID, GameID: a.GameID, Env: a.Env, Version: a.Version, Addr: a.Addr,
		Labels: maps.Clone(a.Labels), LastHeartbeat: a.LastHeartbeat,
		Instances:   make([]Instance, len(a.Instances)),
		Descriptors: make([]*croupierv1.FunctionDescriptor, len(a.Descriptors)),
	}
	for i, in := range a.Instances {
		c.Instances[i] = Instance{ID: in.ID, Functions: slices.Clone(in.Functions), Labels: maps.Clone(in.Labels), Incarnation: in.Incarnation}
	}
	slices.SortFunc(c.Instances, func(x, y Instance) int { return cmp.Compare(x.ID, y.ID) })
	for i, d := range a.Descriptors {
		c.Descriptors[i] = proto.Clone(d).(*croupierv1.FunctionDescriptor)
	}

	st := &agentState{a: c, served: map[string][]string{}, descs: make(map[string]stamped, len(c.Descriptors))}
	for _, in := range c.Instances { // sorted, so each list comes out sorted
		for _, fn := range in.Functions {
			if ids := st.served[fn]; len(ids) == 0 || ids[len(ids)-1] != in.ID {
				st.served[fn] = append(ids, in.ID)
			}
		}
	}
	for _, d := range c.Descriptors {
		st.descs[d.GetId()] = stamped{d: d}
	}
	return st
}

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

// clone returns a deep copy of the agent for callers.
func (st *agentState) clone() Agent {
	return newAgentState(st.a).a
}
