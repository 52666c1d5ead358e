package gateway

import (
	"sync"
	"time"
)

// maxTrackedIPs bounds the per-IP connect limiter's table; when full, idle
// entries (full buckets) are dropped first, then connections from new IPs
// are refused until some are.
const maxTrackedIPs = 1 << 16

// ipLimiter is a token bucket per client IP on WebSocket upgrades.
type ipLimiter struct {
	mu    sync.Mutex
	rate  float64
	burst float64
	ips   map[string]*ipBucket
}

type ipBucket struct {
	tokens float64
	last   time.Time
}

// newIPLimiter returns nil (no limit) for rate <= 0.
func newIPLimiter(rate float64, burst int) *ipLimiter {
	if rate <= 0 {
		return nil
	}
	return &ipLimiter{rate: rate, burst: float64(max(burst, 1)), ips: map[string]*ipBucket{}}
}

func (l *ipLimiter) allow(ip string, now time.Time) bool {
	if l == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.ips[ip]
	if b == nil {
		if len(l.ips) >= maxTrackedIPs {
			l.pruneLocked(now)
			if len(l.ips) >= maxTrackedIPs {
				return false
			}
		}
		b = &ipBucket{tokens: l.burst, last: now}
		l.ips[ip] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// pruneLocked drops the buckets that have refilled: forgetting them changes
// nothing.
func (l *ipLimiter) pruneLocked(now time.Time) {
	for ip, b := range l.ips {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.ips, ip)
		}
	}
}
