package registry

import (
	"slices"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
)

// Descriptor returns the descriptor of a function registered in game/env
// (see the package doc for which one wins), or false if the function is
// not registered there. The descriptor is shared: do not modify it. It
// takes no lock.
func (r *Registry) Descriptor(game, env, fn string) (*croupierv1.FunctionDescriptor, bool) {
	rt, ok := r.Route(game, env, fn)
	if !ok {
		return nil, false
	}
	return rt.Descriptor, true
}

// Registrations returns the registrations matching f, sorted by game, env
// and function id, with current heartbeat times.
func (r *Registry) Registrations(f Filter) []*croupierv1.FunctionRegistration {
	r.mu.RLock()
	defer r.mu.RUnlock()
	keys := r.matchingKeys(f)
	out := make([]*croupierv1.FunctionRegistration, 0, len(keys))
	for _, k := range keys {
		out = append(out, r.build(k))
	}
	return out
}

// matchingKeys returns the sorted keys of existing registrations matching
// f. Callers hold the lock.
func (r *Registry) matchingKeys(f Filter) []fnKey {
	if f.Game != "" && f.Env != "" && f.Function != "" {
		k := fnKey{f.Game, f.Env, f.Function}
		if fs := r.fns[k]; fs != nil && fs.route != nil {
			return []fnKey{k}
		}
		return nil
	}
	var keys []fnKey
	for k, fs := range r.fns {
		if fs.route != nil && f.matches(k) {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, compareKeys)
	return keys
}

// Instances returns the instances serving fn in game/env, sorted by agent
// id, then instance id. It is empty for a function that is registered only
// directly or not at all. The invoke path uses Route, which does not copy.
func (r *Registry) Instances(game, env, fn string) []InstanceRef {
	rt, ok := r.Route(game, env, fn)
	if !ok {
		return nil
	}
	out := make([]InstanceRef, len(rt.Instances))
	for i, in := range rt.Instances {
		out[i] = in.InstanceRef
	}
	return out
}

// Agents returns the agents registered in game/env (an empty game or env
// matches all), sorted by id, each listing all its instances.
func (r *Registry) Agents(game, env string) []*croupierv1.AgentInfo {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var ids []string
	if game != "" && env != "" {
		for id := range r.byScope[scopeKey{game, env}] {
			ids = append(ids, id)
		}
	} else {
		for id, st := range r.agents {
			if (game == "" || st.a.GameID == game) && (env == "" || st.a.Env == env) {
				ids = append(ids, id)
			}
		}
	}
	slices.Sort(ids)
	out := make([]*croupierv1.AgentInfo, 0, len(ids))
	for _, id := range ids {
		st := r.agents[id]
		all := make([]string, len(st.a.Instances))
		for i, in := range st.a.Instances {
			all[i] = in.ID
		}
		out = append(out, agentInfo(st, all))
	}
	return out
}

// Agent returns a copy of an agent's registration.
func (r *Registry) Agent(id string) (Agent, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	st, ok := r.agents[id]
	if !ok {
		return Agent{}, false
	}
	return st.clone(), true
}

// AgentScope returns an agent's game and env without copying its
// registration: what a heartbeat needs.
func (r *Registry) AgentScope(id string) (game, env string, ok bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	st, ok := r.agents[id]
	if !ok {
		return "", "", false
	}
	return st.a.GameID, st.a.Env, true
}
