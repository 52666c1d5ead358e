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
//
// CachedVersion never waits for the store (its caller is a tunnel reader):
// it answers from the cache, stale or not, and refreshes a stale scope in
// the background — at most one refresh per scope at a time, each bounded by
// refreshTimeout, owned by the Assignments and stopped by Close.
type Assignments struct {
	store AssignmentStore
	ttl   time.Duration
	now   func() time.Time

	ctx    context.Context // parent of the background refreshes; Close cancels it
	cancel context.CancelFunc
	wg     sync.WaitGroup // the background refreshes

	mu    sync.Mutex
	cache map[string]*assignmentSet // "game/env"
	// refresh holds a scope whose background refresh is running (zero
	// time) or failed (the time before which none is tried again).
	refresh map[string]time.Time
	closed  bool
}

const (
	// refreshTimeout bounds one background read of a scope's assignments.
	refreshTimeout = 5 * time.Second
	// refreshRetry is how long a scope waits after a failed background
	// refresh, so a failing database is not asked once per agent ping.
	refreshRetry = time.Second
)

type assignmentSet struct {
	loaded  time.Time
	version int64
	byFn    map[string]*croupierv1.FunctionAssignment
}

// NewAssignments returns an Assignments reading through st.
func NewAssignments(st AssignmentStore, ttl time.Duration) *Assignments {
	ctx, cancel := context.WithCancel(context.Background())
	return &Assignments{store: st, ttl: ttl, now: time.Now, ctx: ctx, cancel: cancel,
		cache: map[string]*assignmentSet{}, refresh: map[string]time.Time{}}
}

// Close stops the background refreshes and waits for them.
func (a *Assignments) Close() {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	a.cancel()
	a.wg.Wait()
}

func (a *Assignments) load(ctx context.Context, game, env string) (*assignmentSet, error) {
	key := game + "/" + env
	a.mu.Lock()
	set, ok := a.cache[key]
	a.mu.Unlock()
	if ok && a.now().Sub(set.loaded) < a.ttl {
		return set, nil
	}
	return a.read(ctx, key, game, env)
}

// read loads a scope from the store into the cache.
func (a *Assignments) read(ctx context.Context, key, game, env string) (*assignmentSet, error) {
	list, version, err := a.store.List(ctx, game, env)
	if err != nil {
		return nil, err
	}
	set := &assignmentSet{loaded: a.now(), version: version, byFn: make(map[string]*croupierv1.FunctionAssignment, len(list))}
	for _, as := range list {
		set.byFn[as.GetFunctionId()] = as
	}
	a.mu.Lock()
	a.cache[key] = set
	a.mu.Unlock()
	return set, nil
}

// CachedVersion returns the scope's cached assignment version without
// waiting for the store; ok is false when the scope was never read. A
// stale or missing scope is refreshed in the background, so a later call
// sees the store's version.
func (a *Assignments) CachedVersion(game, env string) (version int64, ok bool) {
	key := game + "/" + env
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	set, ok := a.cache[key]
	if ok && now.Sub(set.loaded) < a.ttl {
		return set.version, true
	}
	if retry, busy := a.refresh[key]; !a.closed && (!busy || !retry.IsZero() && !now.Before(retry)) {
		a.refresh[key] = time.Time{}
		a.wg.Add(1)
		go a.refreshScope(key, game, env)
	}
	if !ok {
		return 0, false
	}
	return set.version, true
}

func (a *Assignments) refreshScope(key, game, env string) {
	defer a.wg.Done()
	ctx, cancel := context.WithTimeout(a.ctx, refreshTimeout)
	defer cancel()
	_, err := a.read(ctx, key, game, env)
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		a.refresh[key] = a.now().Add(refreshRetry)
		return
	}
	delete(a.refresh, key)
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

// Set stores an assignment and marks the cached scope stale: the next read
// goes to the store, and CachedVersion keeps answering the old version
// until its refresh lands, rather than none.
func (a *Assignments) Set(ctx context.Context, game, env, fn string, enabled bool, config map[string]string) (int64, error) {
	v, err := a.store.Set(ctx, game, env, fn, enabled, config)
	if err != nil {
		return 0, err
	}
	key := game + "/" + env
	a.mu.Lock()
	if set, ok := a.cache[key]; ok {
		stale := *set
		stale.loaded = time.Time{}
		a.cache[key] = &stale
	}
	a.mu.Unlock()
	return v, nil
}
