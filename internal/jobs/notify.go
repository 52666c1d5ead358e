package jobs

import "sync"

// notifier wakes watchers of a job when new events are stored. A watcher
// takes the channel for a job, re-reads the log, and waits on the channel;
// notify closes it. Watchers always read from the log, so a slow watcher
// never slows the job.
type notifier struct {
	mu    sync.Mutex
	chans map[string]chan struct{}
}

func newNotifier() *notifier { return &notifier{chans: map[string]chan struct{}{}} }

// wait returns a channel closed at the next notify of id.
func (n *notifier) wait(id string) <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	ch, ok := n.chans[id]
	if !ok {
		ch = make(chan struct{})
		n.chans[id] = ch
	}
	return ch
}

func (n *notifier) notify(id string) {
	n.mu.Lock()
	ch, ok := n.chans[id]
	delete(n.chans, id)
	n.mu.Unlock()
	if ok {
		close(ch)
	}
}
