package registry

import (
	"cmp"
	"maps"
	"slices"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"google.golang.org/protobuf/proto"
)

// build computes the current registration of k, or nil if it does not
// exist. Callers hold the lock (read or write).
func (r *Registry) build(k fnKey) *croupierv1.FunctionRegistration {
	ids := r.servingAgents(k)
	if _, hasDirect := r.direct[k]; len(ids) == 0 && !hasDirect {
		return nil
	}
	reg := &croupierv1.FunctionRegistration{
		FunctionId: k.fn, GameId: k.game, Env: k.env,
		Agents:      make([]*croupierv1.AgentInfo, 0, len(ids)),
		Descriptor_: r.descriptor(k),
	}
	_, disabled := r.disabled[k]
	reg.Enabled = !disabled
	for _, id := range ids {
		st := r.agents[id]
		reg.Agents = append(reg.Agents, agentInfo(st, st.served[k.fn]))
	}
	return reg
}

// servingAgents returns the sorted ids of the agents serving k.
func (r *Registry) servingAgents(k fnKey) []string {
	set := r.byFn[k]
	if len(set) == 0 {
		return nil
	}
	ids := make([]string, 0, len(set))
	for id := range set {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// descriptor picks k's descriptor: the highest stamp among the direct one
// and those of the serving agents (stamps are unique, so map order does not
// matter); a placeholder holding only the id when there is none. Callers
// hold the lock.
func (r *Registry) descriptor(k fnKey) *croupierv1.FunctionDescriptor {
	best, ok := r.direct[k]
	for id := range r.byFn[k] {
		if s, has := r.agents[id].descs[k.fn]; has && (!ok || s.stamp > best.stamp) {
			best, ok = s, true
		}
	}
	if !ok {
		return &croupierv1.FunctionDescriptor{Id: k.fn}
	}
	return best.d
}

// agentInfo describes an agent; instances are the ones relevant to the
// caller (those serving a function, or all of them).
func agentInfo(st *agentState, instances []string) *croupierv1.AgentInfo {
	return &croupierv1.AgentInfo{
		AgentId:       st.a.ID,
		Addr:          st.a.Addr,
		LastHeartbeat: st.a.LastHeartbeat.UnixMilli(),
		Labels:        maps.Clone(st.a.Labels),
		Instances:     slices.Clone(instances),
		GameId:        st.a.GameID,
		Env:           st.a.Env,
		Version:       st.a.Version,
	}
}

// sameRegistration compares two registrations of the same key, ignoring
// heartbeat times, which change constantly and are not events.
func sameRegistration(a, b *croupierv1.FunctionRegistration) bool {
	if a.GetEnabled() != b.GetEnabled() || len(a.GetAgents()) != len(b.GetAgents()) {
		return false
	}
	if a.GetDescriptor_() != b.GetDescriptor_() && !proto.Equal(a.GetDescriptor_(), b.GetDescriptor_()) {
		return false
	}
	for i, x := range a.GetAgents() {
		y := b.GetAgents()[i]
		if x.GetAgentId() != y.GetAgentId() || x.GetAddr() != y.GetAddr() || x.GetVersion() != y.GetVersion() ||
			x.GetGameId() != y.GetGameId() || x.GetEnv() != y.GetEnv() ||
			!maps.Equal(x.GetLabels(), y.GetLabels()) || !slices.Equal(x.GetInstances(), y.GetInstances()) {
			return false
		}
	}
	return true
}

// publish recomputes the registrations of keys (duplicates allowed), emits
// an event for each that changed, in key order, and records the new state.
// Callers hold the write lock, which is what orders events like the state
// changes that caused them.
func (r *Registry) publish(keys []fnKey) {
	slices.SortFunc(keys, compareKeys)
	keys = slices.Compact(keys)
	for _, k := range keys {
		prev, existed := r.published[k]
		next := r.build(k)
		var ev *croupierv1.RegistrationEvent
		switch {
		case next == nil && !existed:
			continue
		case next == nil:
			delete(r.published, k)
			ev = &croupierv1.RegistrationEvent{Type: croupierv1.RegistrationEventType_REMOVED, Registration: prev}
		case !existed:
			r.published[k] = next
			ev = &croupierv1.RegistrationEvent{Type: croupierv1.RegistrationEventType_ADDED, Registration: next}
		case sameRegistration(prev, next):
			continue
		default:
			r.published[k] = next
			ev = &croupierv1.RegistrationEvent{Type: croupierv1.RegistrationEventType_UPDATED, Registration: next}
		}
		r.broadcast(k, ev)
	}
}

func compareKeys(a, b fnKey) int {
	return cmp.Or(cmp.Compare(a.game, b.game), cmp.Compare(a.env, b.env), cmp.Compare(a.fn, b.fn))
}
