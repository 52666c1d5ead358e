package registry

import (
	"cmp"
	"maps"
	"slices"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
)

// build returns the whole current registration of k, or nil if it does not
// exist: O(agents serving it). Callers hold the lock (read or write).
func (r *Registry) build(k fnKey) *croupierv1.FunctionRegistration {
	fs := r.fns[k]
	if fs == nil || fs.route == nil {
		return nil
	}
	rt := fs.route
	ids := make([]string, 0, len(fs.agents))
	for id := range fs.agents {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	reg := &croupierv1.FunctionRegistration{
		FunctionId: k.fn, GameId: k.game, Env: k.env, Enabled: rt.Enabled, Descriptor_: rt.Descriptor,
		Agents: make([]*croupierv1.AgentInfo, 0, len(ids)),
	}
	for _, id := range ids {
		st := fs.agents[id]
		reg.Agents = append(reg.Agents, agentInfo(st, st.served[k.fn]))
	}
	return reg
}

// agentInfo describes an agent; instances are the ones relevant to the
// caller (those serving a function, or all of them).
func agentInfo(st *agentState, instances []string) *croupierv1.AgentInfo {
	return &croupierv1.AgentInfo{
		AgentId:       st.a.ID,
		Addr:          st.a.Addr,
		LastHeartbeat: st.lastHeartbeat().UnixMilli(),
		Labels:        maps.Clone(st.a.Labels),
		Instances:     slices.Clone(instances),
		GameId:        st.a.GameID,
		Env:           st.a.Env,
		Version:       st.a.Version,
	}
}

func compareKeys(a, b fnKey) int {
	return cmp.Or(cmp.Compare(a.game, b.game), cmp.Compare(a.env, b.env), cmp.Compare(a.fn, b.fn))
}
