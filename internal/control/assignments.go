package control

import (
	"context"
	"sync"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
)

// AssignmentStore persists assignments (see internal/store).
type AssignmentStore interface {
	Set(ctx context.Context, game, env, fn string, enabled bool, config map[string]string) (int64, error)
	List(ctx context.Context, game, env string) ([]*croupierv1.FunctionAssignment, int64, error)
}

// Assignments serves per-function enablement and config with a short-lived
// cache, so the invoke hot path does not query the database on every call.
// Other server nodes see a change within ttl.
type Assignments struct {
	store AssignmentStore
	ttl   time.Duration
	now   func() time.Time

	mu    sync.Mutex
	cache map[string]*assignmentSet // "game/env"
}

type assignmentSet struct {
	loaded  time.Time
	version int64
	byFn    map[string]*croupierv1.FunctionAssignment
}

// NewAssignments returns an Assignments reading through st.
func NewAssignments(st AssignmentStore, ttl time.Duration) *Assignments {
	return &Assignments{store: st, ttl: ttl, now: time.Now, cache: map[string]*assignmentSet{}}
}

func (a *Assignments) load(ctx context.Context, game, env string) (*assignmentSet, error) {
	key := game + "/" + env
	a.mu.Lock()
	set, ok := a.cache[key]
	a.mu.Unlock()
	if ok && a.now().Sub(set.loaded) < a.ttl {
		return set, nil
	}
	list, version, err := a.store.List(ctx, game, env)
	if err != nil {
		return nil, err
	}
	set = &assignmentSet{loaded: a.now(), version: version, byFn: make(map[string]*croupierv1.FunctionAssignment, len(list))}
	for _, as := range list {
		set.byFn[as.GetFunctionId()] = as
	}
	a.mu.Lock()
	a.cache[key] = set
	a.mu.Unlock()
	return set, nil
}

// Assignment reports whether fn is enabled and its config. Functions without
// an explicit assignment are enabled with no config.
func (a *Assignments) Assignment(ctx context.Context, game, env, fn string) (bool, map[string]string, error) {
	set, err := a.load(ctx, game, env)
	if err != nil {
		return false, nil, err
	}
	if as, ok := set.byFn[fn]; ok {
		return as.GetEnabled(), as.GetConfig(), nil
	}
	return true, nil, nil
}

// ForFunctions returns the assignments of fns (defaults filled in) and the
// scope's version.
func (a *Assignments) ForFunctions(ctx context.Context, game, env string, fns []string) ([]*croupierv1.FunctionAssignment, int64, error) {
	set, err := a.load(ctx, game, env)
	if err != nil {
		return nil, 0, err
	}
	out := make([]*croupierv1.FunctionAssignment, 0, len(fns))
	for _, fn := range fns {
		if as, ok := set.byFn[fn]; ok {
			out = append(out, as)
			continue
		}
		out = append(out, &croupierv1.FunctionAssignment{FunctionId: fn, Enabled: true})
	}
	return out, set.version, nil
}

// Version returns the scope's assignment version.
func (a *Assignments) Version(ctx context.Context, game, env string) (int64, error) {
	set, err := a.load(ctx, game, env)
	if err != nil {
		return 0, err
	}
	return set.version, nil
}

// Set stores an assignment and drops the cached scope.
func (a *Assignments) Set(ctx context.Context, game, env, fn string, enabled bool, config map[string]string) (int64, error) {
	v, err := a.store.Set(ctx, game, env, fn, enabled, config)
	if err != nil {
		return 0, err
	}
	a.mu.Lock()
	delete(a.cache, game+"/"+env)
	a.mu.Unlock()
	return v, nil
}
