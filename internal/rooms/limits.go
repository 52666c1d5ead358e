package rooms

import (
	"math"
	"sync"
	"time"
)

// limits are the chat and danmaku rate limits of each user in each room
// on this node. They are kept apart from the streams, so a reconnect does
// not refill them, and shared by the user's stream and RemoteChat. A
// user's entry is dropped once both buckets have refilled: a new one
// would be the same, so the map holds only users who spoke within about
// the last second.
type limits struct {
	chatRate, danmRate float64

	mu      sync.Mutex
	users   map[limitKey]*userLimits
	sweepAt int // sweep for refilled entries when the map reaches this size
}

type limitKey struct{ room, user string }

type userLimits struct{ chat, danm bucket }

// minSweep is the map size below which refilled entries are left alone.
const minSweep = 1024

func newLimits(chatRate, danmRate float64) *limits {
	return &limits{chatRate: chatRate, danmRate: danmRate, users: map[limitKey]*userLimits{}, sweepAt: minSweep}
}

// take spends one chat (or danmaku) message of the user's in the room; false:
// over the limit.
func (l *limits) take(roomID, userID string, danmaku bool, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := limitKey{roomID, userID}
	u := l.users[k]
	if u == nil {
		if len(l.users) >= l.sweepAt {
			l.sweep(now)
		}
		u = &userLimits{chat: newBucket(l.chatRate, now), danm: newBucket(l.danmRate, now)}
		l.users[k] = u
	}
	if danmaku {
		return u.danm.take(now)
	}
	return u.chat.take(now)
}

// sweep drops the refilled entries; l.mu held. The next sweep waits until
// the map has doubled, so sweeping costs O(1) per entry added.
func (l *limits) sweep(now time.Time) {
	for k, u := range l.users {
		if u.chat.full(now) && u.danm.full(now) {
			delete(l.users, k)
		}
	}
	l.sweepAt = max(minSweep, 2*len(l.users))
}

// bucket is a token bucket (rate per second, burst of the same size).
// Guarded by limits.mu.
type bucket struct {
	rate   float64
	tokens float64
	last   time.Time
}

func newBucket(rate float64, now time.Time) bucket {
	return bucket{rate: rate, tokens: rate, last: now}
}

func (b *bucket) take(now time.Time) bool {
	if d := now.Sub(b.last).Seconds(); d > 0 {
		b.tokens = math.Min(b.rate, b.tokens+d*b.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// full says whether the bucket has refilled by now.
func (b *bucket) full(now time.Time) bool {
	return b.tokens+max(0, now.Sub(b.last).Seconds())*b.rate >= b.rate
}
