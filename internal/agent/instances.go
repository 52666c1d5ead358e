package agent

import (
	"sort"
	"sync"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
)

// instance is one game-server process connected through the SDK.
type instance struct {
	id          string
	incarnation string
	functions   []*croupierv1.FunctionDescriptor
	labels      map[string]string
}

// instances is the agent's table of connected game-server instances.
type instances struct {
	mu       sync.RWMutex
	byID     map[string]*instance
	departed []departure   // recently disconnected, newest last, bounded
	changed  chan struct{} // capacity 1: "registration is stale", coalesced
	// dirty holds the ids of instances put or removed since the server last
	// heard of them (bounded by the instances plus maxDepartures).
	dirty map[string]struct{}
}

// departure is an instance that disconnected; reported to the server so it
// fails that process's jobs at once.
type departure struct {
	id, incarnation string
	at              time.Time
}

const (
	maxDepartures   = 64
	departureMaxAge = 5 * time.Minute
)

func newInstances() *instances {
	return &instances{byID: map[string]*instance{}, changed: make(chan struct{}, 1), dirty: map[string]struct{}{}}
}

func (t *instances) notify() {
	select {
	case t.changed <- struct{}{}:
	default:
	}
}

func (t *instances) put(in *instance) {
	t.mu.Lock()
	t.byID[in.id] = in
	t.dirty[in.id] = struct{}{}
	t.mu.Unlock()
	t.notify()
}

func (t *instances) remove(id string) bool {
	t.mu.Lock()
	in, ok := t.byID[id]
	delete(t.byID, id)
	if ok {
		t.dirty[id] = struct{}{}
		t.departed = append(t.departed, departure{id: id, incarnation: in.incarnation, at: time.Now()})
		if len(t.departed) > maxDepartures {
			t.departed = t.departed[len(t.departed)-maxDepartures:]
		}
	}
	t.mu.Unlock()
	if ok {
		t.notify()
	}
	return ok
}

// pick returns the instance to run fn on: want if given (and serving fn),
// otherwise the first instance serving fn in id order.
func (t *instances) pick(want, fn string) (string, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if want != "" {
		in, ok := t.byID[want]
		return want, ok && serves(in, fn)
	}
	best, found := "", false
	for id, in := range t.byID { // one pass, no sort: agents may hold thousands
		if (!found || id < best) && serves(in, fn) {
			best, found = id, true
		}
	}
	return best, found
}

func serves(in *instance, fn string) bool {
	for _, d := range in.functions {
		if d.GetId() == fn {
			return true
		}
	}
	return false
}

// delta builds an UpdateInstances request for what changed since the last
// snapshot or delta, and forgets those changes (redirty puts them back if
// the request fails). Its size follows the change, not the instance count.
func (t *instances) delta(agentID string) (*croupierv1.UpdateInstancesRequest, []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	req := &croupierv1.UpdateInstancesRequest{AgentId: agentID}
	ids := make([]string, 0, len(t.dirty))
	for id := range t.dirty {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	seen := map[string]bool{}
	for _, id := range ids {
		in, ok := t.byID[id]
		if !ok {
			req.Removed = append(req.Removed, id)
			for _, d := range t.departed {
				if d.id == id {
					req.Departed = append(req.Departed, &croupierv1.InstanceInfo{InstanceId: id, Incarnation: d.incarnation})
				}
			}
			continue
		}
		info := &croupierv1.InstanceInfo{InstanceId: id, Labels: in.labels, Incarnation: in.incarnation}
		for _, d := range in.functions {
			info.Functions = append(info.Functions, d.GetId())
			if !seen[d.GetId()] {
				seen[d.GetId()] = true
				req.Descriptors = append(req.Descriptors, d)
			}
		}
		req.Upserted = append(req.Upserted, info)
	}
	clear(t.dirty)
	return req, ids
}

// redirty marks ids as not yet reported (their delta failed); the next
// delta reports them.
func (t *instances) redirty(ids []string) {
	t.mu.Lock()
	for _, id := range ids {
		t.dirty[id] = struct{}{}
	}
	t.mu.Unlock()
}

// snapshot builds the registration the agent reports to the server; the
// server then knows every change so far.
func (t *instances) snapshot() (fns []string, descs []*croupierv1.FunctionDescriptor, infos, departed []*croupierv1.InstanceInfo) {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.dirty)
	seen := map[string]bool{}
	ids := make([]string, 0, len(t.byID))
	for id := range t.byID {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		in := t.byID[id]
		info := &croupierv1.InstanceInfo{InstanceId: id, Labels: in.labels, Incarnation: in.incarnation}
		for _, d := range in.functions {
			info.Functions = append(info.Functions, d.GetId())
			if !seen[d.GetId()] {
				seen[d.GetId()] = true
				fns = append(fns, d.GetId())
				descs = append(descs, d)
			}
		}
		infos = append(infos, info)
	}
	for _, d := range t.departed {
		if time.Since(d.at) < departureMaxAge && t.byID[d.id] == nil {
			departed = append(departed, &croupierv1.InstanceInfo{InstanceId: d.id, Incarnation: d.incarnation})
		}
	}
	return fns, descs, infos, departed
}
