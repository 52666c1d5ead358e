package ratelimit

import (
	"container/list"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/croupier/croupier/internal/apierr"
	"google.golang.org/grpc/codes"
)

// LoginConfig configures a LoginThrottle. Zero values pick the defaults
// documented in docs/security.md.
type LoginConfig struct {
	// UserFree is how many failed logins in a row a username may have
	// before its further attempts wait; default 5.
	UserFree int
	// SourceFree is the same for a source address (any username); default
	// 20, higher than UserFree because several operators may share an
	// address (NAT, a bastion host).
	SourceFree int
	// Base is the wait after the first failure beyond the free ones; each
	// further failure doubles it. Default 1s.
	Base time.Duration
	// Max caps the wait; default 15 minutes. It bounds how long an attacker
	// can keep a username locked after their last guess.
	Max time.Duration
	// Forget is how long after its last failure a key starts over with
	// free attempts; default 1 hour (at least Max).
	Forget time.Duration
	// MaxKeys bounds the usernames, addresses and known (username, address)
	// pairs kept in memory; default 100000. The least recently used is
	// evicted first, forgetting its failures.
	MaxKeys int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// LoginThrottle slows password guessing: after UserFree failures for a
// username, or SourceFree failures from an address, further attempts are
// refused (RESOURCE_EXHAUSTED, RATE_LIMITED, with retry-after) without
// checking the password until a wait that doubles with each failure, up to
// Max, has passed; and from then on only one attempt at a time is let
// through, so concurrent guesses cannot all slip past the check before the
// first of them fails. A success resets the username and the address.
//
// An attacker must not lock the real user out: an address from which the
// username has logged in successfully before (remembered in memory) is not
// held back by the username's wait, only by its own; and the username's
// wait is at most Max after the last failure. It is safe for concurrent
// use.
type LoginThrottle struct {
	cfg LoginConfig
	now func() time.Time

	mu      sync.Mutex
	entries map[string]*list.Element // of *loginEntry
	lru     *list.List               // front = most recently used
	// share, when set (Share), tells the other server nodes of each
	// attempt that failed or succeeded here; called without mu.
	share func(user, source string, ok bool)
}

type loginEntry struct {
	key      string
	failures int
	inflight int       // attempts let through and not yet finished
	last     time.Time // of the last failure
	until    time.Time // attempts before this are refused
	reported bool      // a refusal until `until` has been reported
	known    bool      // pair keys: the username logged in from the address
}

// NewLoginThrottle returns a LoginThrottle; it refuses nonsensical settings.
func NewLoginThrottle(cfg LoginConfig) (*LoginThrottle, error) {
	if cfg.UserFree < 0 || cfg.SourceFree < 0 || cfg.Base < 0 || cfg.Max < 0 || cfg.Forget < 0 || cfg.MaxKeys < 0 {
		return nil, fmt.Errorf("ratelimit: login throttle settings must be >= 0: %+v", cfg)
	}
	if cfg.UserFree == 0 {
		cfg.UserFree = 5
	}
	if cfg.SourceFree == 0 {
		cfg.SourceFree = 20
	}
	if cfg.Base == 0 {
		cfg.Base = time.Second
	}
	if cfg.Max == 0 {
		cfg.Max = 15 * time.Minute
	}
	if cfg.Base > cfg.Max {
		return nil, fmt.Errorf("ratelimit: login throttle base wait %s exceeds its cap %s", cfg.Base, cfg.Max)
	}
	if cfg.Forget == 0 {
		cfg.Forget = time.Hour
	}
	cfg.Forget = max(cfg.Forget, cfg.Max)
	if cfg.MaxKeys == 0 {
		cfg.MaxKeys = 100000
	}
	t := &LoginThrottle{cfg: cfg, now: cfg.Now, entries: map[string]*list.Element{}, lru: list.New()}
	if t.now == nil {
		t.now = time.Now
	}
	return t, nil
}

// LoginRefusal describes a refused attempt.
type LoginRefusal struct {
	// Err is RESOURCE_EXHAUSTED with ErrorInfo RATE_LIMITED (details
	// retry_after_ms, limit "login.user" or "login.source").
	Err error
	// Limit is "login.user" or "login.source".
	Limit string
	// RetryAfter is how long the caller is to wait (at least 1 ms).
	RetryAfter time.Duration
	// First is true for the first refusal of this wait: callers audit that
	// one only, so a flood of refused attempts cannot flood the audit log.
	First bool
}

// LoginAttempt is an attempt Begin let through. Finish it with exactly
// one of Succeeded, Failed or Abandoned.
type LoginAttempt struct {
	t            *LoginThrottle
	user, source string
	// userHeld and sourceHeld say which keys' inflight count it holds.
	userHeld, sourceHeld bool
	done                 bool
}

// Begin says whether user may try a password from source now: it returns
// the attempt to finish, or the refusal. An empty source skips the address
// checks (a caller without a network peer).
func (t *LoginThrottle) Begin(user, source string) (*LoginAttempt, *LoginRefusal) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	var se, ue *loginEntry
	if source != "" {
		se = t.put("s\x00"+source, now)
		if r := t.check(se, t.cfg.SourceFree, "login.source", "too many failed logins from this address", now); r != nil {
			return nil, r
		}
	}
	exempt := false
	if source != "" {
		k := t.get("k\x00"+user+"\x00"+source, now)
		exempt = k != nil && k.known
	}
	if !exempt {
		ue = t.put("u\x00"+user, now)
		if r := t.check(ue, t.cfg.UserFree, "login.user", "too many failed logins for this username", now); r != nil {
			return nil, r
		}
	}
	a := &LoginAttempt{t: t, user: user, source: source}
	if se != nil {
		se.inflight++
		a.sourceHeld = true
	}
	if ue != nil {
		ue.inflight++
		a.userHeld = true
	}
	return a, nil
}

// check refuses while e waits, and beyond its free attempts while another
// attempt is in flight. t.mu is held.
func (t *LoginThrottle) check(e *loginEntry, free int, limit, why string, now time.Time) *LoginRefusal {
	wait := e.until.Sub(now)
	if wait <= 0 && e.inflight > 0 && e.failures+e.inflight >= free {
		wait = t.cfg.Base // the attempt in flight decides; ask again shortly
	}
	if wait <= 0 {
		return nil
	}
	first := !e.reported
	e.reported = true
	ms := max(wait.Milliseconds(), 1)
	secs := max(int64((wait+time.Second-1)/time.Second), 1)
	err := apierr.New(codes.ResourceExhausted, CodeRateLimited,
		fmt.Sprintf("%s; retry in %ds", why, secs),
		"retry_after_ms", strconv.FormatInt(ms, 10), "limit", limit)
	return &LoginRefusal{Err: err, Limit: limit, First: first, RetryAfter: time.Duration(ms) * time.Millisecond}
}

// Failed records a wrong password: the username (even from a known
// address) and the address count a failure.
func (a *LoginAttempt) Failed() {
	if a.finish(func(t *LoginThrottle, now time.Time) { t.failed(a.user, a.source, now) }) {
		a.t.shared(a.user, a.source, false)
	}
}

// failed counts a failure for user and source; t.mu is held.
func (t *LoginThrottle) failed(user, source string, now time.Time) {
	t.fail(t.put("u\x00"+user, now), t.cfg.UserFree, now)
	if source != "" {
		t.fail(t.put("s\x00"+source, now), t.cfg.SourceFree, now)
	}
}

// Succeeded resets the username and the address and remembers that the
// user logs in from the address.
func (a *LoginAttempt) Succeeded() {
	if a.finish(func(t *LoginThrottle, now time.Time) { t.succeeded(a.user, a.source, now) }) {
		a.t.shared(a.user, a.source, true)
	}
}

// succeeded resets user and source and remembers the pair; t.mu is held.
func (t *LoginThrottle) succeeded(user, source string, now time.Time) {
	keys := []string{"u\x00" + user}
	if source != "" {
		keys = append(keys, "s\x00"+source)
		t.put("k\x00"+user+"\x00"+source, now).known = true
	}
	for _, k := range keys {
		if el, ok := t.entries[k]; ok {
			e := el.Value.(*loginEntry)
			// Other attempts may still be in flight: keep their count.
			e.failures, e.until, e.reported = 0, time.Time{}, false
		}
	}
}

// Abandoned ends an attempt that neither failed nor succeeded (the
// database was down, the caller went away): it counts for nothing.
func (a *LoginAttempt) Abandoned() { a.finish(func(*LoginThrottle, time.Time) {}) }

// finish records the attempt's outcome once; it reports whether it did.
func (a *LoginAttempt) finish(record func(t *LoginThrottle, now time.Time)) bool {
	t := a.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if a.done {
		return false
	}
	a.done = true
	now := t.now()
	release := func(key string) {
		if el, ok := t.entries[key]; ok {
			if e := el.Value.(*loginEntry); e.inflight > 0 {
				e.inflight--
			}
		}
	}
	if a.userHeld {
		release("u\x00" + a.user)
	}
	if a.sourceHeld {
		release("s\x00" + a.source)
	}
	record(t, now)
	return true
}

func (t *LoginThrottle) fail(e *loginEntry, free int, now time.Time) {
	e.failures++
	e.last = now
	if e.failures < free {
		return
	}
	wait := t.cfg.Max
	if n := e.failures - free; n < 31 {
		wait = min(t.cfg.Base<<n, t.cfg.Max)
	}
	e.until = now.Add(wait)
	e.reported = false
}

// Len returns the number of keys held, for metrics and tests.
func (t *LoginThrottle) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lru.Len()
}

// get returns key's entry, nil if none; failures older than Forget are
// forgotten. t.mu is held.
func (t *LoginThrottle) get(key string, now time.Time) *loginEntry {
	el, ok := t.entries[key]
	if !ok {
		return nil
	}
	t.lru.MoveToFront(el)
	e := el.Value.(*loginEntry)
	if e.failures > 0 && now.Sub(e.last) >= t.cfg.Forget && !now.Before(e.until) && e.inflight == 0 {
		e.failures, e.until, e.reported = 0, time.Time{}, false
	}
	return e
}

// put returns key's entry, creating it and evicting the least recently
// used as needed. t.mu is held.
func (t *LoginThrottle) put(key string, now time.Time) *loginEntry {
	if e := t.get(key, now); e != nil {
		return e
	}
	for t.lru.Len() >= t.cfg.MaxKeys {
		oldest := t.lru.Back()
		t.lru.Remove(oldest)
		delete(t.entries, oldest.Value.(*loginEntry).key)
	}
	e := &loginEntry{key: key}
	t.entries[key] = t.lru.PushFront(e)
	return e
}
