package ratelimit_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/ratelimit"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func newThrottle(t *testing.T, cfg ratelimit.LoginConfig) (*ratelimit.LoginThrottle, *clock) {
	t.Helper()
	c := &clock{}
	c.ns.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	cfg.Now = c.Now
	th, err := ratelimit.NewLoginThrottle(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return th, c
}

// fail, succeed and allowed run one attempt that Begin must let through.
func fail(t *testing.T, th *ratelimit.LoginThrottle, user, source string) {
	t.Helper()
	a, r := th.Begin(user, source)
	if r != nil {
		t.Fatalf("%s from %q refused: %v", user, source, r.Err)
	}
	a.Failed()
}

func succeed(t *testing.T, th *ratelimit.LoginThrottle, user, source string) {
	t.Helper()
	a, r := th.Begin(user, source)
	if r != nil {
		t.Fatalf("%s from %q refused: %v", user, source, r.Err)
	}
	a.Succeeded()
}

func allowed(t *testing.T, th *ratelimit.LoginThrottle, user, source string) {
	t.Helper()
	a, r := th.Begin(user, source)
	if r != nil {
		t.Fatalf("%s from %q refused: %v", user, source, r.Err)
	}
	a.Abandoned()
}

// wantRefused checks that user from source is refused by limit with the
// given wait.
func wantRefused(t *testing.T, th *ratelimit.LoginThrottle, user, source, limit string, wait time.Duration) *ratelimit.LoginRefusal {
	t.Helper()
	a, r := th.Begin(user, source)
	if r == nil {
		a.Abandoned()
		t.Fatalf("%s from %q allowed, want refused by %s", user, source, limit)
	}
	if r.Limit != limit || status.Code(r.Err) != codes.ResourceExhausted || apierr.Info(r.Err).GetCode() != ratelimit.CodeRateLimited {
		t.Fatalf("refusal = %+v (%v), want %s RESOURCE_EXHAUSTED RATE_LIMITED", r, r.Err, limit)
	}
	if d, ok := ratelimit.RetryAfter(r.Err); !ok || d != wait {
		t.Fatalf("retry after = %v, %v; want %v", d, ok, wait)
	}
	return r
}

func TestLoginThrottleBackoffDoublesToCapAndResetsOnSuccess(t *testing.T) {
	t.Parallel()
	th, c := newThrottle(t, ratelimit.LoginConfig{UserFree: 3, SourceFree: 100, Base: time.Second, Max: 10 * time.Second})
	for range 2 {
		allowed(t, th, "root", "10.0.0.1")
		fail(t, th, "root", "10.0.0.1")
	}
	allowed(t, th, "root", "10.0.0.1")
	fail(t, th, "root", "10.0.0.1") // third failure: 1s wait
	r := wantRefused(t, th, "root", "10.0.0.2", "login.user", time.Second)
	if !r.First {
		t.Fatal("first refusal not marked first")
	}
	if h, _ := ratelimit.RetryAfterHeader(r.Err); h != "1" {
		t.Fatalf("Retry-After = %q, want 1", h)
	}
	if r := wantRefused(t, th, "root", "10.0.0.2", "login.user", time.Second); r.First {
		t.Fatal("second refusal of the same wait marked first")
	}
	// Other usernames are not held back.
	allowed(t, th, "amy", "10.0.0.2")
	// Each further failure doubles the wait, up to the cap.
	for _, want := range []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second} {
		c.Advance(time.Hour / 10) // past any wait, within Forget
		allowed(t, th, "root", "10.0.0.1")
		fail(t, th, "root", "10.0.0.1")
		wantRefused(t, th, "root", "10.0.0.3", "login.user", want)
	}
	// A success resets: the free attempts are back.
	c.Advance(10 * time.Second)
	succeed(t, th, "root", "10.0.0.1")
	fail(t, th, "root", "10.0.0.9")
	fail(t, th, "root", "10.0.0.9")
	allowed(t, th, "root", "10.0.0.9")
}

func TestLoginThrottleSourceAndKnownAddress(t *testing.T) {
	t.Parallel()
	th, c := newThrottle(t, ratelimit.LoginConfig{UserFree: 2, SourceFree: 3, Base: time.Minute, Max: 15 * time.Minute})
	// root logged in from the admin's address once.
	succeed(t, th, "root", "10.0.0.1")
	// An attacker guesses root's password from elsewhere, and spreads over
	// usernames: the address is held back after 3 failures.
	fail(t, th, "root", "192.0.2.7")
	fail(t, th, "bob", "192.0.2.7")
	fail(t, th, "amy", "192.0.2.7")
	wantRefused(t, th, "carl", "192.0.2.7", "login.source", time.Minute)
	// From a fresh address root's own wait applies (2 failures)...
	fail(t, th, "root", "198.51.100.1")
	wantRefused(t, th, "root", "198.51.100.2", "login.user", time.Minute)
	// ...but the admin's known address is not locked out by the attacker.
	allowed(t, th, "root", "10.0.0.1")
	// The wait is bounded: however many failures, at most Max after the
	// last one.
	for range 50 {
		c.Advance(16 * time.Minute)
		fail(t, th, "root", fmt.Sprintf("203.0.113.%d", c.ns.Load()%250))
	}
	wantRefused(t, th, "root", "198.51.100.2", "login.user", 15*time.Minute)
	c.Advance(15 * time.Minute)
	allowed(t, th, "root", "198.51.100.2")
	// Failures are forgotten an hour after the last one.
	th2, c2 := newThrottle(t, ratelimit.LoginConfig{UserFree: 2})
	fail(t, th2, "bob", "")
	c2.Advance(time.Hour)
	fail(t, th2, "bob", "")
	allowed(t, th2, "bob", "")
}

// Concurrent guesses cannot all pass the check before the first of them
// fails: beyond the free attempts only one is in flight at a time.
func TestLoginThrottleConcurrentAttempts(t *testing.T) {
	t.Parallel()
	th, c := newThrottle(t, ratelimit.LoginConfig{UserFree: 3, Base: time.Second})
	var held []*ratelimit.LoginAttempt
	for range 3 {
		a, r := th.Begin("root", "10.0.0.1")
		if r != nil {
			t.Fatalf("free attempt refused: %v", r.Err)
		}
		held = append(held, a)
	}
	wantRefused(t, th, "root", "10.0.0.2", "login.user", time.Second)
	for _, a := range held {
		a.Failed()
		a.Failed() // a second finish is ignored
	}
	wantRefused(t, th, "root", "10.0.0.2", "login.user", time.Second)
	c.Advance(time.Second)
	a, r := th.Begin("root", "10.0.0.3")
	if r != nil {
		t.Fatalf("attempt after the wait refused: %v", r.Err)
	}
	wantRefused(t, th, "root", "10.0.0.4", "login.user", time.Second) // one at a time
	a.Abandoned()                                                     // e.g. the database was down: counts for nothing
	fail(t, th, "root", "10.0.0.4")
	wantRefused(t, th, "root", "10.0.0.5", "login.user", 2*time.Second)
}

func TestLoginThrottleBoundedMemory(t *testing.T) {
	t.Parallel()
	th, _ := newThrottle(t, ratelimit.LoginConfig{MaxKeys: 100})
	for i := range 1000 {
		fail(t, th, fmt.Sprintf("user%d", i), fmt.Sprintf("10.0.%d.%d", i/250, i%250))
	}
	if n := th.Len(); n != 100 {
		t.Fatalf("holds %d keys, want the cap 100", n)
	}
	if _, err := ratelimit.NewLoginThrottle(ratelimit.LoginConfig{Base: time.Hour, Max: time.Minute}); err == nil {
		t.Fatal("base over max accepted")
	}
}
