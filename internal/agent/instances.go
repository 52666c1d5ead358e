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
	return &instances{byID: map[string]*instance{}, changed: make(chan struct{}, 1)}
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
	t.mu.Unlock()
	t.notify()
}

func (t *instances) remove(id string) bool {
	t.mu.Lock()
	in, ok := t.byID[id]
	delete(t.byID, id)
	if ok {
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
	ids := make([]string, 0, len(t.byID))
	for id, in := range t.byID {
		if serves(in, fn) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return "", false
	}
	sort.Strings(ids)
	return ids[0], true
}

func serves(in *instance, fn string) bool {
	for _, d := range in.functions {
		if d.GetId() == fn {
			return true
		}
	}
	return false
}

// snapshot builds the registration the agent reports to the server.
func (t *instances) snapshot() (fns []string, descs []*croupierv1.FunctionDescriptor, infos, departed []*croupierv1.InstanceInfo) {
	t.mu.RLock()
	defer t.mu.RUnlock()
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
