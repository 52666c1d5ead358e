package registry

import (
	"context"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
)

// watcher is one Watch call. Its channel is only sent on and closed with
// the registry's write lock held, so a send never races the close.
type watcher struct {
	filter Filter
	ch     chan *croupierv1.RegistrationEvent
	// stop cancels the context.AfterFunc that drops the watcher.
	stop func() bool
}

// Watch streams the registrations matching f: each existing one as ADDED,
// then one SYNCED event with no registration, then live ADDED, UPDATED and
// REMOVED events in the order the changes happened.
//
// The channel is closed when ctx ends, or earlier when the watcher falls
// more than Options.WatchBuffer events behind: the registry never waits for
// a reader. If the channel closes while ctx.Err() is nil, events were lost
// and the caller must watch again. Watch fails only if ctx is already done.
func (r *Registry) Watch(ctx context.Context, f Filter) (<-chan *croupierv1.RegistrationEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	keys := r.matchingKeys(f)
	// The snapshot gets room of its own so a large registry does not cut a
	// new watcher off before it has read anything.
	w := &watcher{filter: f, ch: make(chan *croupierv1.RegistrationEvent, len(keys)+1+r.watchBuffer)}
	for _, k := range keys {
		w.ch <- &croupierv1.RegistrationEvent{Type: croupierv1.RegistrationEventType_ADDED, Registration: r.build(k)}
	}
	w.ch <- &croupierv1.RegistrationEvent{Type: croupierv1.RegistrationEventType_SYNCED}
	r.watchers[w] = struct{}{}
	// If ctx is already done the func runs at once on its own goroutine and
	// waits for the lock we hold, so w.stop is set before it can matter.
	w.stop = context.AfterFunc(ctx, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.dropWatcher(w)
	})
	return w.ch, nil
}

// broadcast hands ev to every watcher interested in k without blocking,
// cutting off watchers whose buffer is full. Callers hold the write lock.
func (r *Registry) broadcast(k fnKey, ev *croupierv1.RegistrationEvent) {
	for w := range r.watchers {
		if !w.filter.matches(k) {
			continue
		}
		select {
		case w.ch <- ev:
		default:
			r.dropWatcher(w)
		}
	}
}

// dropWatcher closes w's channel once. Callers hold the write lock.
func (r *Registry) dropWatcher(w *watcher) {
	if _, ok := r.watchers[w]; !ok {
		return
	}
	delete(r.watchers, w)
	close(w.ch)
	w.stop()
}

// Watchers returns the number of active watchers, for metrics and tests.
func (r *Registry) Watchers() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.watchers)
}
