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

// wantRefused checks that user from source is refused by limit with the
// given wait.
func wantRefused(t *testing.T, th *ratelimit.LoginThrottle, user, source, limit string, wait time.Duration) *ratelimit.LoginRefusal {
	t.Helper()
	r := th.Check(user, source)
	if r == nil {
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
	for i := range 2 {
		if r := th.Check("root", "10.0.0.1"); r != nil {
			t.Fatalf("attempt %d refused: %v", i, r.Err)
		}
		th.Failed("root", "10.0.0.1")
	}
	if r := th.Check("root", "10.0.0.1"); r != nil {
		t.Fatalf("third attempt refused: %v", r.Err)
	}
	th.Failed("root", "10.0.0.1") // third failure: 1s wait
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
	if r := th.Check("amy", "10.0.0.2"); r != nil {
		t.Fatalf("amy refused: %v", r.Err)
	}
	// Each further failure doubles the wait, up to the cap.
	for _, want := range []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second} {
		c.Advance(time.Hour / 10) // past any wait, within Forget
		if r := th.Check("root", "10.0.0.1"); r != nil {
			t.Fatalf("refused after the wait passed: %v", r.Err)
		}
		th.Failed("root", "10.0.0.1")
		wantRefused(t, th, "root", "10.0.0.3", "login.user", want)
	}
	// A success resets: the free attempts are back.
	c.Advance(10 * time.Second)
	th.Succeeded("root", "10.0.0.1")
	th.Failed("root", "10.0.0.9")
	th.Failed("root", "10.0.0.9")
	if r := th.Check("root", "10.0.0.9"); r != nil {
		t.Fatalf("refused after a success reset the count: %v", r.Err)
	}
}

func TestLoginThrottleSourceAndKnownAddress(t *testing.T) {
	t.Parallel()
	th, c := newThrottle(t, ratelimit.LoginConfig{UserFree: 2, SourceFree: 3, Base: time.Minute, Max: 15 * time.Minute})
	// root logged in from the admin's address once.
	th.Succeeded("root", "10.0.0.1")
	// An attacker guesses root's password from elsewhere, and spreads over
	// usernames: the address is held back after 3 failures.
	th.Failed("root", "192.0.2.7")
	th.Failed("bob", "192.0.2.7")
	th.Failed("amy", "192.0.2.7")
	wantRefused(t, th, "carl", "192.0.2.7", "login.source", time.Minute)
	// From a fresh address root's own wait applies (2 failures)...
	th.Failed("root", "198.51.100.1")
	wantRefused(t, th, "root", "198.51.100.2", "login.user", time.Minute)
	// ...but the admin's known address is not locked out by the attacker.
	if r := th.Check("root", "10.0.0.1"); r != nil {
		t.Fatalf("known address refused: %v", r.Err)
	}
	// The wait is bounded: however many failures, at most Max after the
	// last one.
	for range 50 {
		c.Advance(16 * time.Minute)
		th.Failed("root", fmt.Sprintf("203.0.113.%d", c.ns.Load()%250))
	}
	wantRefused(t, th, "root", "198.51.100.2", "login.user", 15*time.Minute)
	c.Advance(15 * time.Minute)
	if r := th.Check("root", "198.51.100.2"); r != nil {
		t.Fatalf("still refused after the cap: %v", r.Err)
	}
	// Failures are forgotten an hour after the last one.
	th2, c2 := newThrottle(t, ratelimit.LoginConfig{UserFree: 2})
	th2.Failed("bob", "")
	c2.Advance(time.Hour)
	th2.Failed("bob", "")
	if r := th2.Check("bob", ""); r != nil {
		t.Fatalf("an old failure still counted: %v", r.Err)
	}
}

func TestLoginThrottleBoundedMemory(t *testing.T) {
	t.Parallel()
	th, _ := newThrottle(t, ratelimit.LoginConfig{MaxKeys: 100})
	for i := range 1000 {
		th.Failed(fmt.Sprintf("user%d", i), fmt.Sprintf("10.0.%d.%d", i/250, i%250))
	}
	if n := th.Len(); n != 100 {
		t.Fatalf("holds %d keys, want the cap 100", n)
	}
	if _, err := ratelimit.NewLoginThrottle(ratelimit.LoginConfig{Base: time.Hour, Max: time.Minute}); err == nil {
		t.Fatal("base over max accepted")
	}
}
