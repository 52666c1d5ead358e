package rooms

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/croupier/croupier/internal/store"
)

// chatLog stores chat messages in the background, in batches, with one
// writer: members already have a message when it is published, and many
// concurrent small transactions would make SQLite's writers queue on its
// lock. The queue is bounded; when it is full, senders wait (their own
// stream's reading pauses), never the room.
type chatLog struct {
	st   *store.Rooms
	log  *slog.Logger
	in   chan store.ChatMessage
	done chan struct{}

	mu     sync.RWMutex // held shared by senders, exclusively by close
	closed bool
}

const (
	chatLogQueue = 4096
	chatLogBatch = 256
)

// newChatLog starts the writer goroutine; close stops it after it has
// stored what was queued.
func newChatLog(st *store.Rooms, log *slog.Logger) *chatLog {
	l := &chatLog{st: st, log: log, in: make(chan store.ChatMessage, chatLogQueue), done: make(chan struct{})}
	go l.run()
	return l
}

func (l *chatLog) add(ctx context.Context, m store.ChatMessage) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return
	}
	select {
	case l.in <- m:
	case <-ctx.Done():
		l.log.Warn("chat message not stored", "room", m.RoomID, "seq", m.Seq, "err", ctx.Err())
	}
}

func (l *chatLog) run() {
	defer close(l.done)
	batch := make([]store.ChatMessage, 0, chatLogBatch)
	for m := range l.in {
		batch = append(batch[:0], m)
	fill:
		for len(batch) < chatLogBatch {
			select {
			case m, ok := <-l.in:
				if !ok {
					break fill
				}
				batch = append(batch, m)
			default:
				break fill
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := l.st.AppendChat(ctx, batch, chatKeep); err != nil {
			// Members already have them; only a later reload of the room
			// misses them.
			l.log.Warn("chat messages not stored", "count", len(batch), "err", err)
		}
		cancel()
	}
}

func (l *chatLog) close() {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.in)
	}
	l.mu.Unlock()
	<-l.done
}
