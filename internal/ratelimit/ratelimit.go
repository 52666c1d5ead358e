// Package ratelimit limits how fast operators call: a token bucket per user
// and one per function, both of which a call must pass. Buckets live in
// memory, per server node, in a bounded map that evicts the least recently
// used bucket; a refusal is RESOURCE_EXHAUSTED with a retry-after duration
// the REST edge turns into a Retry-After header.
package ratelimit

import (
	"container/list"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/telemetry"
	"google.golang.org/grpc/codes"
)

// CodeRateLimited is the ErrorInfo code of a refusal; its details carry
// "retry_after_ms", "limit" (user or function) and "key".
const CodeRateLimited = apierr.CodeRateLimited

// Rate is a token bucket's refill rate and capacity. A zero Rate means
// unlimited.
type Rate struct {
	// PerSecond is the sustained rate.
	PerSecond float64
	// Burst is the bucket capacity: how many calls may come at once.
	Burst int
}

func (r Rate) unlimited() bool { return r.PerSecond <= 0 || r.Burst <= 0 }

// Config configures a Limiter.
type Config struct {
	// PerUser limits each user (principal) across all functions.
	PerUser Rate
	// PerFunction limits each function (game/env/function) across all users.
	PerFunction Rate
	// Functions overrides PerFunction for particular functions, keyed by
	// function id ("player.ban") or game/env/function ("demo/prod/player.ban";
	// the more specific key wins).
	Functions map[string]Rate
	// MaxKeys bounds the buckets kept in memory; default 100000. Evicting a
	// bucket forgets its debt, so keep it well above the number of active
	// users plus functions.
	MaxKeys int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Metrics counts refusals; nil records nothing.
	Metrics *telemetry.Metrics
	// Nodes, when set, says how many server nodes share the limits (the
	// cluster's live members): each node enforces 1/Nodes of every rate and
	// burst (burst at least 1). Approximate: exact when a load balancer
	// spreads each user's calls evenly; a user pinned to one node gets
	// 1/N of the limit. Buckets stay in memory (docs/cluster.md).
	Nodes func() int
}

// Limiter holds the buckets. It is safe for concurrent use.
type Limiter struct {
	cfg Config
	now func() time.Time

	mu      sync.Mutex
	buckets map[string]*list.Element // of *bucket
	lru     *list.List               // front = most recently used
}

type bucket struct {
	key    string
	tokens float64
	last   time.Time
}

// New returns a Limiter; it refuses nonsensical rates.
func New(cfg Config) (*Limiter, error) {
	check := func(name string, r Rate) error {
		if r.PerSecond < 0 || r.Burst < 0 || math.IsNaN(r.PerSecond) || math.IsInf(r.PerSecond, 0) {
			return fmt.Errorf("ratelimit: %s: rate %v and burst %d must be finite and >= 0", name, r.PerSecond, r.Burst)
		}
		return nil
	}
	if err := errors.Join(check("per user", cfg.PerUser), check("per function", cfg.PerFunction)); err != nil {
		return nil, err
	}
	for k, r := range cfg.Functions {
		if err := check("function "+k, r); err != nil {
			return nil, err
		}
	}
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = 100000
	}
	l := &Limiter{cfg: cfg, now: cfg.Now, buckets: make(map[string]*list.Element), lru: list.New()}
	if l.now == nil {
		l.now = time.Now
	}
	return l, nil
}

// Allow takes one token from the user's bucket and one from the function's,
// or none at all: a call refused by one bucket does not spend the other's
// token. It returns nil, or RESOURCE_EXHAUSTED naming the limit and when to
// retry. An empty user or function skips that bucket.
func (l *Limiter) Allow(user, game, env, function string) error {
	userRate, fnRate := l.share(l.cfg.PerUser), l.share(l.functionRate(game, env, function))
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var ub, fb *bucket
	var uWait, fWait time.Duration
	if user != "" && !userRate.unlimited() {
		ub = l.bucket("u\x00"+user, userRate, now)
		uWait = wait(ub, userRate)
	}
	if function != "" && !fnRate.unlimited() {
		fb = l.bucket("f\x00"+game+"/"+env+"/"+function, fnRate, now)
		fWait = wait(fb, fnRate)
	}
	switch {
	case uWait > 0 && uWait >= fWait:
		l.cfg.Metrics.RateLimited("user")
		return exhausted("user", user, userRate, uWait)
	case fWait > 0:
		l.cfg.Metrics.RateLimited("function")
		return exhausted("function", game+"/"+env+"/"+function, fnRate, fWait)
	}
	if ub != nil {
		ub.tokens--
	}
	if fb != nil {
		fb.tokens--
	}
	return nil
}

// share is this node's part of r when Config.Nodes nodes share it.
func (l *Limiter) share(r Rate) Rate {
	if l.cfg.Nodes == nil || r.unlimited() {
		return r
	}
	n := l.cfg.Nodes()
	if n <= 1 {
		return r
	}
	return Rate{PerSecond: r.PerSecond / float64(n), Burst: max(1, r.Burst/n)}
}

func (l *Limiter) functionRate(game, env, function string) Rate {
	if r, ok := l.cfg.Functions[game+"/"+env+"/"+function]; ok {
		return r
	}
	if r, ok := l.cfg.Functions[function]; ok {
		return r
	}
	return l.cfg.PerFunction
}

// bucket returns the refilled bucket for key, creating (full) or evicting
// as needed. l.mu is held.
func (l *Limiter) bucket(key string, r Rate, now time.Time) *bucket {
	if el, ok := l.buckets[key]; ok {
		l.lru.MoveToFront(el)
		b := el.Value.(*bucket)
		if elapsed := now.Sub(b.last); elapsed > 0 {
			b.tokens = math.Min(float64(r.Burst), b.tokens+elapsed.Seconds()*r.PerSecond)
			b.last = now
		}
		return b
	}
	for l.lru.Len() >= l.cfg.MaxKeys {
		oldest := l.lru.Back()
		l.lru.Remove(oldest)
		delete(l.buckets, oldest.Value.(*bucket).key)
	}
	b := &bucket{key: key, tokens: float64(r.Burst), last: now}
	l.buckets[key] = l.lru.PushFront(b)
	return b
}

// wait is how long until b holds a whole token; 0 if it does now.
func wait(b *bucket, r Rate) time.Duration {
	if b.tokens >= 1 {
		return 0
	}
	d := time.Duration((1 - b.tokens) / r.PerSecond * float64(time.Second))
	return max(d, time.Millisecond)
}

// Len returns the number of buckets held, for metrics and tests.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}

func exhausted(limit, key string, r Rate, retry time.Duration) error {
	ms := retry.Milliseconds()
	if ms == 0 {
		ms = 1
	}
	return apierr.New(codes.ResourceExhausted, CodeRateLimited,
		fmt.Sprintf("rate limit of %s %s exceeded (%g/s, burst %d); retry in %s", limit, key, r.PerSecond, r.Burst, retry.Round(time.Millisecond)),
		"retry_after_ms", strconv.FormatInt(ms, 10), "limit", limit, "key", key)
}

// RetryAfter extracts the retry-after duration of a refusal from Allow.
func RetryAfter(err error) (time.Duration, bool) {
	info := apierr.Info(err)
	if info == nil || info.GetCode() != CodeRateLimited {
		return 0, false
	}
	ms, perr := strconv.ParseInt(info.GetDetails()["retry_after_ms"], 10, 64)
	if perr != nil || ms < 0 {
		return 0, false
	}
	return time.Duration(ms) * time.Millisecond, true
}

// RetryAfterHeader is the Retry-After header value (whole seconds, rounded
// up, at least 1) for a refusal from Allow.
func RetryAfterHeader(err error) (string, bool) {
	d, ok := RetryAfter(err)
	if !ok {
		return "", false
	}
	secs := max(int64((d+time.Second-1)/time.Second), 1)
	return strconv.FormatInt(secs, 10), true
}
