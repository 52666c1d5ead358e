package jobs

import "sync"

// notifier wakes watchers of a job when new events are stored. A watcher
// takes the channel for a job, re-reads the log, and waits on the channel;
// notify closes it. Watchers always read from the log, so a slow watcher
// never slows the job. Entries are reference-counted: a job nobody waits
// for has none.
type notifier struct {
	mu    sync.Mutex
	chans map[string]*waiters
}

type waiters struct {
	ch chan struct{}
	n  int
}

func newNotifier() *notifier { return &notifier{chans: map[string]*waiters{}} }

// wait returns a channel closed at the next notify of id, and a release
// function the caller must call when it stops waiting on that channel.
func (n *notifier) wait(id string) (<-chan struct{}, func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	w, ok := n.chans[id]
	if !ok {
		w = &waiters{ch: make(chan struct{})}
		n.chans[id] = w
	}
	w.n++
	return w.ch, func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		if cur, ok := n.chans[id]; ok && cur == w {
			if w.n--; w.n == 0 {
				delete(n.chans, id)
			}
		}
	}
}

func (n *notifier) notify(id string) {
	n.mu.Lock()
	w, ok := n.chans[id]
	delete(n.chans, id)
	n.mu.Unlock()
	if ok {
		close(w.ch)
	}
}
