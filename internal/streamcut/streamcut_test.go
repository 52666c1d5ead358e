package streamcut_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/croupier/croupier/internal/streamcut"
)

// TestSet: Cut ends the streams its match selects with their cause, and
// only those; a stream released or ended otherwise has no cut cause; a
// context derived from a held one reports the cut too.
func TestSet(t *testing.T) {
	var s streamcut.Set[string]
	ctx := t.Context()
	a1, releaseA1 := s.Hold(ctx, "a")
	defer releaseA1()
	a2, releaseA2 := s.Hold(ctx, "a")
	defer releaseA2()
	b, releaseB := s.Hold(ctx, "b")
	defer releaseB()
	left, cancelLeft := context.WithCancel(ctx)
	c, releaseC := s.Hold(left, "c")
	defer releaseC()
	derived, stop := context.WithCancel(a1)
	defer stop()

	if keys := s.Keys(); len(keys) != 3 || !slices.Contains(keys, "a") || !slices.Contains(keys, "b") || !slices.Contains(keys, "c") {
		t.Fatalf("keys %v, want a, b and c once each", keys)
	}
	errA := errors.New("a is revoked")
	s.Cut(func(k string) bool { return k == "a" }, func(string) error { return errA })
	for name, ctx := range map[string]context.Context{"a1": a1, "a2": a2, "derived from a1": derived} {
		if got := streamcut.Cause(ctx); got != errA {
			t.Errorf("%s: cause %v, want %v", name, got, errA)
		}
	}
	if b.Err() != nil || streamcut.Cause(b) != nil {
		t.Errorf("b was cut: %v", context.Cause(b))
	}
	cancelLeft() // the caller left: not a cut
	if c.Err() == nil || streamcut.Cause(c) != nil {
		t.Errorf("c: err %v, cause %v; want cancelled, not cut", c.Err(), streamcut.Cause(c))
	}
	n := s.Len()
	releaseB()
	if s.Len() != n-1 || streamcut.Cause(b) != nil {
		t.Errorf("after b's release: %d held (want %d), cause %v", s.Len(), n-1, streamcut.Cause(b))
	}
	s.Cut(func(string) bool { return true }, func(k string) error { return errors.New(k) })
	if streamcut.Cause(b) != nil {
		t.Error("a released stream was cut")
	}
}
