package rooms

import (
	"math"
	"sync"
	"time"

	"github.com/croupier/croupier/internal/apierr"
	"google.golang.org/grpc/codes"
)

// limits are the chat, danmaku and control (playback and playlist
// changes) rate limits of each user in each room on this node. They are
// kept apart from the streams, so a reconnect does not refill them, and
// shared by the user's stream, their rpcs and RemoteChat. A user's entry
// is dropped once its buckets have refilled: a new one would be the same,
// so the map holds only users who acted within about the last second.
type limits struct {
	rates [limitKinds]float64

	mu      sync.Mutex
	users   map[limitKey]*userLimits
	sweepAt int // sweep for refilled entries when the map reaches this size
}

type limitKey struct{ room, user string }

// limitKind names a user's bucket.
type limitKind int

const (
	limitChat limitKind = iota
	limitDanmaku
	limitControl
	limitKinds
)

// String is the kind's name in messages and the metrics' limit label.
func (k limitKind) String() string {
	return [...]string{"chat", "danmaku", "control"}[k]
}

type userLimits [limitKinds]bucket

// minSweep is the map size below which refilled entries are left alone.
const minSweep = 1024

func newLimits(rates [limitKinds]float64) *limits {
	return &limits{rates: rates, users: map[limitKey]*userLimits{}, sweepAt: minSweep}
}

// take spends one token of the user's kind bucket in the room; false: over
// the limit.
func (l *limits) take(roomID, userID string, kind limitKind, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := limitKey{roomID, userID}
	u := l.users[k]
	if u == nil {
		if len(l.users) >= l.sweepAt {
			l.sweep(now)
		}
		u = &userLimits{}
		for i, rate := range l.rates {
			u[i] = newBucket(rate, now)
		}
		l.users[k] = u
	}
	return u[kind].take(now)
}

// sweep drops the refilled entries; l.mu held. The next sweep waits until
// the map has doubled, so sweeping costs O(1) per entry added.
func (l *limits) sweep(now time.Time) {
	for k, u := range l.users {
		full := true
		for i := range u {
			full = full && u[i].full(now)
		}
		if full {
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

// rateLimit spends one of userID's kind tokens in the room: a
// RESOURCE_EXHAUSTED RATE_LIMITED error when there is none left.
func (s *Service) rateLimit(roomID, userID string, kind limitKind) error {
	if s.limits.take(roomID, userID, kind, s.now()) {
		return nil
	}
	s.m.rateLimited.WithLabelValues(kind.String()).Inc()
	what := map[limitKind]string{limitChat: "chat messages", limitDanmaku: "danmaku messages", limitControl: "playback and playlist changes"}[kind]
	return apierr.New(codes.ResourceExhausted, apierr.CodeRateLimited,
		"too many "+what+" from user "+userID+" in room "+roomID+": at most "+ftoa(s.rates[kind])+" per second; slow down", "limit", kind.String())
}
