package registry

import (
	"context"
	"slices"
	"sync"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
)

// Estimated sizes of pending changes, for the per-watcher byte bound.
const (
	pendingKeyBytes   = 160 // a function with something pending
	pendingAgentBytes = 64  // one agent's entry in it
)

// watcher is one Watch call. Mutations record what changed in pending
// (never blocking, never allocating more than the byte bound allows); the
// watcher's pump goroutine turns pending changes into events from the
// registry's current state and hands them to the reader.
type watcher struct {
	filter Filter
	deltas bool
	limit  int
	wake   chan struct{} // capacity 1: "pending is not empty"

	mu      sync.Mutex
	pending map[fnKey]*pendingKey
	order   []fnKey // keys of pending, in the order they became pending
	bytes   int
	// collapsed: pending changes went over limit and now name whole
	// functions only.
	collapsed bool

	// known holds the keys the reader was told exist. Only the pump
	// touches it, holding the registry's read lock.
	known map[fnKey]struct{}
}

// pendingKey is what changed in one registration since the watcher's last
// event for it.
type pendingKey struct {
	agents map[string]struct{} // nil when whole (collapsed or new)
	whole  bool
	desc   bool
	// last is the registration as it was when it was removed, built only if
	// a whole-registration watcher needs it.
	last *croupierv1.FunctionRegistration
}

// Watch streams the registrations matching f: each existing one as ADDED,
// then one SYNCED event with no registration, then live ADDED, UPDATED and
// REMOVED events carrying whole registrations. See WatchWith.
func (r *Registry) Watch(ctx context.Context, f Filter) (<-chan *croupierv1.RegistrationEvent, error) {
	return r.WatchWith(ctx, f, WatchOptions{})
}

// WatchWith is Watch with a choice of live event form. The snapshot always
// carries whole registrations; with opts.Deltas, live events carry a
// RegistrationDelta instead, sized by what changed.
//
// Changes a watcher has not read yet are coalesced per function: an event
// describes the function's state when it is built, not every intermediate
// state, and the pending changes are bounded in bytes
// (Options.WatchBufferBytes) by collapsing to one entry per function. The
// registry never waits for a reader and never cuts one off; the channel is
// closed when ctx ends. Watch fails only if ctx is already done.
func (r *Registry) WatchWith(ctx context.Context, f Filter, opts WatchOptions) (<-chan *croupierv1.RegistrationEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	limit := r.watchBuffer
	if opts.BufferBytes > 0 {
		limit = opts.BufferBytes
	}
	w := &watcher{filter: f, deltas: opts.Deltas, limit: limit, wake: make(chan struct{}, 1),
		pending: map[fnKey]*pendingKey{}, known: map[fnKey]struct{}{}}
	r.mu.Lock()
	keys := r.matchingKeys(f)
	snapshot := make([]*croupierv1.RegistrationEvent, 0, len(keys)+1)
	for _, k := range keys {
		snapshot = append(snapshot, &croupierv1.RegistrationEvent{Type: croupierv1.RegistrationEventType_ADDED, Registration: r.build(k)})
		w.known[k] = struct{}{}
	}
	snapshot = append(snapshot, &croupierv1.RegistrationEvent{Type: croupierv1.RegistrationEventType_SYNCED})
	r.watchers[w] = struct{}{}
	r.mu.Unlock()

	out := make(chan *croupierv1.RegistrationEvent, 1)
	go r.pump(ctx, w, snapshot, out)
	return out, nil
}

// pump is the watcher's goroutine: it owns out and exits (closing it and
// dropping the watcher) when ctx ends.
func (r *Registry) pump(ctx context.Context, w *watcher, snapshot []*croupierv1.RegistrationEvent, out chan<- *croupierv1.RegistrationEvent) {
	defer func() {
		r.mu.Lock()
		delete(r.watchers, w)
		r.mu.Unlock()
		close(out)
	}()
	send := func(ev *croupierv1.RegistrationEvent) bool {
		select {
		case out <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for _, ev := range snapshot {
		if !send(ev) {
			return
		}
	}
	for {
		ev, more := r.nextEvent(w)
		switch {
		case ev != nil:
			if !send(ev) {
				return
			}
		case !more:
			select {
			case <-w.wake:
			case <-ctx.Done():
				return
			}
		}
	}
}

// nextEvent pops the oldest pending function and builds its event from the
// current state; nil with more=true when the function needs no event (it
// came and went unseen), more=false when nothing is pending.
func (r *Registry) nextEvent(w *watcher) (ev *croupierv1.RegistrationEvent, more bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	w.mu.Lock()
	if len(w.order) == 0 {
		w.collapsed = false
		w.mu.Unlock()
		return nil, false
	}
	k := w.order[0]
	w.order[0] = fnKey{}
	w.order = w.order[1:]
	p := w.pending[k]
	delete(w.pending, k)
	w.bytes -= pendingKeyBytes + pendingAgentBytes*len(p.agents)
	w.mu.Unlock()
	return r.event(w, k, p), true
}

// event builds w's event for k. Callers hold the read lock.
func (r *Registry) event(w *watcher, k fnKey, p *pendingKey) *croupierv1.RegistrationEvent {
	fs := r.fns[k]
	exists := fs != nil && fs.route != nil
	_, known := w.known[k]
	var typ croupierv1.RegistrationEventType
	switch {
	case exists && !known:
		typ = croupierv1.RegistrationEventType_ADDED
		w.known[k] = struct{}{}
	case exists:
		typ = croupierv1.RegistrationEventType_UPDATED
	case known:
		typ = croupierv1.RegistrationEventType_REMOVED
		delete(w.known, k)
	default:
		return nil // added and removed before the reader saw it
	}
	ev := &croupierv1.RegistrationEvent{Type: typ}
	if !w.deltas {
		if exists {
			ev.Registration = r.build(k)
		} else if ev.Registration = p.last; p.last == nil {
			ev.Registration = &croupierv1.FunctionRegistration{FunctionId: k.fn, GameId: k.game, Env: k.env}
		}
		return ev
	}
	d := &croupierv1.RegistrationDelta{FunctionId: k.fn, GameId: k.game, Env: k.env}
	ev.Delta = d
	if !exists {
		return ev
	}
	d.Enabled = fs.route.Enabled
	if p.whole || typ == croupierv1.RegistrationEventType_ADDED {
		d.Replace, d.Descriptor_ = true, fs.route.Descriptor
		d.Agents = r.build(k).GetAgents()
		return ev
	}
	if p.desc {
		d.Descriptor_ = fs.route.Descriptor
	}
	ids := make([]string, 0, len(p.agents))
	for id := range p.agents {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if st := fs.agents[id]; st != nil {
			d.Agents = append(d.Agents, agentInfo(st, st.served[k.fn]))
		} else {
			d.RemovedAgentIds = append(d.RemovedAgentIds, id)
		}
	}
	return ev
}

// notify records a change of k with every interested watcher, without
// blocking. last, non-nil when k was removed, builds its last state.
// Callers hold the write lock.
func (r *Registry) notify(k fnKey, c *change, descChanged bool, last func() *croupierv1.FunctionRegistration) {
	var lastReg *croupierv1.FunctionRegistration
	for w := range r.watchers {
		if !w.filter.matches(k) {
			continue
		}
		if last != nil && !w.deltas && lastReg == nil {
			lastReg = last()
		}
		w.note(k, c, descChanged, lastReg)
	}
}

func (w *watcher) note(k fnKey, c *change, descChanged bool, last *croupierv1.FunctionRegistration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := w.pending[k]
	if p == nil {
		p = &pendingKey{whole: w.collapsed}
		w.pending[k] = p
		w.order = append(w.order, k)
		w.bytes += pendingKeyBytes
	}
	p.desc = p.desc || descChanged
	p.last = last
	if !p.whole {
		for id := range c.agents {
			if p.agents == nil {
				p.agents = map[string]struct{}{}
			}
			if _, ok := p.agents[id]; !ok {
				p.agents[id] = struct{}{}
				w.bytes += pendingAgentBytes
			}
		}
	}
	if w.bytes > w.limit && !w.collapsed {
		// Over budget: forget which agents changed, resend whole functions.
		for _, q := range w.pending {
			w.bytes -= pendingAgentBytes * len(q.agents)
			q.agents, q.whole = nil, true
		}
		w.collapsed = true
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Watchers returns the number of active watchers, for metrics and tests.
func (r *Registry) Watchers() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.watchers)
}
