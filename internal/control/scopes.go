package control

import (
	"context"
	"sync"
)

// ScopeStore persists declared game/env pairs.
type ScopeStore interface {
	Declare(ctx context.Context, game, env string) error
	Exists(ctx context.Context, game, env string) (bool, error)
}

// Scopes answers whether a scope is declared. Scopes are never undeclared,
// so positive answers are cached for good; negative ones ask the store
// again (another node may have declared it).
type Scopes struct {
	store ScopeStore
	mu    sync.RWMutex
	known map[string]bool
}

// NewScopes returns Scopes over st.
func NewScopes(st ScopeStore) *Scopes {
	return &Scopes{store: st, known: map[string]bool{}}
}

// Declare records a scope.
func (s *Scopes) Declare(ctx context.Context, game, env string) error {
	if err := s.store.Declare(ctx, game, env); err != nil {
		return err
	}
	s.mu.Lock()
	s.known[game+"/"+env] = true
	s.mu.Unlock()
	return nil
}

// Declared reports whether game/env is declared.
func (s *Scopes) Declared(ctx context.Context, game, env string) (bool, error) {
	s.mu.RLock()
	ok := s.known[game+"/"+env]
	s.mu.RUnlock()
	if ok {
		return true, nil
	}
	ok, err := s.store.Exists(ctx, game, env)
	if err != nil || !ok {
		return false, err
	}
	s.mu.Lock()
	s.known[game+"/"+env] = true
	s.mu.Unlock()
	return true, nil
}
