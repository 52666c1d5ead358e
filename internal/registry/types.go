package registry

import (
	"errors"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
)

// Errors returned by the registry, for errors.Is.
var (
	// ErrNotFound: the agent is not registered.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: a registration is malformed; the message says how.
	ErrInvalid = errors.New("invalid registration")
)

// Instance is one game-server process behind an agent.
type Instance struct {
	// ID is unique within the agent; globally an instance is "agent/instance".
	ID string
	// Functions lists the function ids the instance serves.
	Functions []string
	Labels    map[string]string
	// Incarnation changes when the instance's process restarts.
	Incarnation string
}

// Agent is one agent's registration.
type Agent struct {
	ID, GameID, Env, Version, Addr string
	Labels                         map[string]string
	Instances                      []Instance
	// Descriptors of the functions the agent's instances serve. Descriptors
	// of functions no instance serves are kept but do not count until an
	// instance serves the function.
	Descriptors []*croupierv1.FunctionDescriptor
	// LastHeartbeat defaults to Options.Now() when zero at Upsert.
	LastHeartbeat time.Time
}

// InstanceRef names an instance serving a function.
type InstanceRef struct {
	Agent, Instance string
}

// Key returns "agent/instance", the instance's global name.
func (r InstanceRef) Key() string { return r.Agent + "/" + r.Instance }

// Filter selects registrations; an empty field matches everything.
type Filter struct {
	Game, Env, Function string
}

func (f Filter) matches(k fnKey) bool {
	return (f.Game == "" || f.Game == k.game) &&
		(f.Env == "" || f.Env == k.env) &&
		(f.Function == "" || f.Function == k.fn)
}

// DefaultWatchBufferBytes bounds a watcher's pending changes.
const DefaultWatchBufferBytes = 256 << 10

// Options configure a Registry.
type Options struct {
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// WatchBufferBytes bounds the estimated size of the changes a watcher
	// has not read yet (DefaultWatchBufferBytes when <= 0). Past it, the
	// watcher's pending changes collapse to one "resend this function"
	// entry per function, so the bound holds whatever the fleet does and a
	// slow watcher is never cut off. The initial snapshot does not count.
	WatchBufferBytes int
	// Changed, when set, is called with an agent's id after Upsert,
	// UpdateInstances or Remove touched it (with no lock held): the cluster
	// tier republishes the agent's registration to other nodes.
	Changed func(agentID string)
}

// WatchOptions choose the form of a watch's live events.
type WatchOptions struct {
	// Deltas makes live events carry a RegistrationDelta instead of the
	// whole registration.
	Deltas bool
	// BufferBytes overrides Options.WatchBufferBytes for this watcher
	// (when > 0).
	BufferBytes int
}

// fnKey identifies a function registration.
type fnKey struct{ game, env, fn string }

// scopeKey identifies a game/env scope.
type scopeKey struct{ game, env string }
