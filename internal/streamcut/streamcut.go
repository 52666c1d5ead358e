// Package streamcut tracks a server's open streams by who opened them, so
// that a change of the caller's standing — a revoked certificate, a revoked
// login session, a disabled user, a revoked role — ends the streams already open and not
// only the calls to come: the stream's context is cancelled with the error
// a new call would get, and the interceptor that held it returns that
// error (Cause), whatever the handler made of its cancelled context.
package streamcut

import (
	"context"
	"errors"
	"sync"
)

// Set holds open streams by key K (a certificate serial, a login session).
// The zero Set is ready to use.
type Set[K comparable] struct {
	mu   sync.Mutex
	held map[*held[K]]struct{}
}

type held[K comparable] struct {
	key    K
	cancel context.CancelCauseFunc
}

// Hold tracks a stream of key until release is called; Cut cancels the
// context it returns.
func (s *Set[K]) Hold(ctx context.Context, key K) (_ context.Context, release func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	h := &held[K]{key: key, cancel: cancel}
	s.mu.Lock()
	if s.held == nil {
		s.held = map[*held[K]]struct{}{}
	}
	s.held[h] = struct{}{}
	s.mu.Unlock()
	return ctx, func() {
		s.mu.Lock()
		delete(s.held, h)
		s.mu.Unlock()
		cancel(nil)
	}
}

// Cut ends the held streams whose key match selects, each with cause(key)
// (Cause returns it). match runs with the Set locked: it must not call the
// Set.
func (s *Set[K]) Cut(match func(K) bool, cause func(K) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for h := range s.held {
		if match(h.key) {
			h.cancel(cutError{cause(h.key)})
		}
	}
}

// Keys returns the distinct keys of the streams held now.
func (s *Set[K]) Keys() []K {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := make(map[K]bool, len(s.held))
	keys := make([]K, 0, len(s.held))
	for h := range s.held {
		if !seen[h.key] {
			seen[h.key] = true
			keys = append(keys, h.key)
		}
	}
	return keys
}

// Len is how many streams are held now.
func (s *Set[K]) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.held)
}

// Cause returns the error a held stream's context (or a context derived
// from one) was cut with, nil when it was not cut — it is live, or ended
// for another reason (the caller left, the server stops).
func Cause(ctx context.Context) error {
	if ctx.Err() == nil {
		return nil
	}
	var c cutError
	if errors.As(context.Cause(ctx), &c) {
		return c.err
	}
	return nil
}

// cutError marks a cause set by Cut.
type cutError struct{ err error }

func (c cutError) Error() string { return c.err.Error() }
func (c cutError) Unwrap() error { return c.err }
