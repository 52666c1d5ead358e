package rooms

import (
	"math"
	"sync"
	"time"

	"github.com/croupier/croupier/internal/apierr"
	"google.golang.org/grpc/codes"
)

// limits are the rate limits kept on this node: each user's chat,
// danmaku and control (playback and playlist changes) in each room, and
// each source address's sign-ups (Register, GuestJoin). They are kept
// apart from the streams, so a reconnect does not refill them, and shared
// by the user's stream, their rpcs and RemoteChat. An entry is dropped
// once its buckets have refilled: a new one would be the same, so the map
// holds only those who acted within a burst's refill time.
type limits struct {
	rates [limitKinds]rateSpec

	mu      sync.Mutex
	users   map[limitKey]*userLimits
	sweepAt int // sweep for refilled entries when the map reaches this size
}

// limitKey is a user in a room, or a source address (room "") for
// sign-ups.
type limitKey struct{ room, user string }

// limitKind names a bucket.
type limitKind int

const (
	limitChat limitKind = iota
	limitDanmaku
	limitControl
	limitSignup
	limitKinds
)

// String is the kind's name in messages and the metrics' limit label.
func (k limitKind) String() string {
	return [...]string{"chat", "danmaku", "control", "signup"}[k]
}

// rateSpec is a token bucket's refill rate and size.
type rateSpec struct{ perSecond, burst float64 }

type userLimits [limitKinds]bucket

// minSweep is the map size below which refilled entries are left alone.
const minSweep = 1024

func newLimits(rates [limitKinds]rateSpec) *limits {
	return &limits{rates: rates, users: map[limitKey]*userLimits{}, sweepAt: minSweep}
}

// take spends one token of the kind bucket of k; false: over the limit.
func (l *limits) take(k limitKey, kind limitKind, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	u := l.users[k]
	if u == nil {
		if len(l.users) >= l.sweepAt {
			l.sweep(now)
		}
		u = &userLimits{}
		for i, r := range l.rates {
			u[i] = bucket{rate: r.perSecond, burst: r.burst, tokens: r.burst, last: now}
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

// bucket is a token bucket. Guarded by limits.mu.
type bucket struct {
	rate, burst float64
	tokens      float64
	last        time.Time
}

func (b *bucket) take(now time.Time) bool {
	if d := now.Sub(b.last).Seconds(); d > 0 {
		b.tokens = math.Min(b.burst, b.tokens+d*b.rate)
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
	return b.tokens+max(0, now.Sub(b.last).Seconds())*b.rate >= b.burst
}

// rateLimit spends one of userID's kind tokens in the room: a
// RESOURCE_EXHAUSTED RATE_LIMITED error when there is none left.
func (s *Service) rateLimit(roomID, userID string, kind limitKind) error {
	if s.limits.take(limitKey{roomID, userID}, kind, s.now()) {
		return nil
	}
	s.m.rateLimited.WithLabelValues(kind.String()).Inc()
	what := map[limitKind]string{limitChat: "chat messages", limitDanmaku: "danmaku messages", limitControl: "playback and playlist changes"}[kind]
	return apierr.New(codes.ResourceExhausted, apierr.CodeRateLimited,
		"too many "+what+" from user "+userID+" in room "+roomID+": at most "+ftoa(s.limits.rates[kind].perSecond)+" per second; slow down", "limit", kind.String())
}

// signupLimit spends one of the source address's sign-up tokens (a
// Register or a GuestJoin, each a new user row); "" (an in-process caller)
// has no limit.
func (s *Service) signupLimit(source string) error {
	if source == "" || s.limits.take(limitKey{user: source}, limitSignup, s.now()) {
		return nil
	}
	s.m.rateLimited.WithLabelValues(limitSignup.String()).Inc()
	r := s.limits.rates[limitSignup]
	return apierr.New(codes.ResourceExhausted, apierr.CodeRateLimited,
		"too many new accounts and guests from "+source+": at most "+ftoa(r.perSecond*60)+" a minute (bursts of "+ftoa(r.burst)+"); try again later", "limit", limitSignup.String())
}
