package invoke

import (
	"math/rand/v2"

	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/registry"
	"google.golang.org/grpc/codes"
)

// Routing modes of InvokeOptions.routing_mode.
const (
	ModeLB        = "lb"
	ModeBroadcast = "broadcast"
	ModeTargeted  = "targeted"
	ModeHash      = "hash"
)

// scanLimit is the largest candidate list lb scans in full. Above it, lb
// takes the less loaded of two random instances ("power of two choices"):
// O(1) per call whatever the fleet size, and within a small constant of the
// full scan's balance. Below it, a full scan costs less than the random
// numbers and gives exact least-loaded with random ties.
const scanLimit = 16

// pick returns the instances a call goes to, in the given mode, reading
// only the route's immutable snapshot and the instances' atomic counters.
// remote (nil on one node) reports whether an agent's tunnel ends on
// another server node: lb counts such an instance as one call busier
// (remotePenalty), so calls stay on this node while its instances are no
// busier, and still spread when they are.
func pick(mode, target, hashKey string, rt *registry.Route, remote func(agent string) bool) ([]*registry.RouteInstance, error) {
	live := rt.Instances
	switch mode {
	case "", ModeLB:
		return []*registry.RouteInstance{leastLoaded(live, remote)}, nil
	case ModeBroadcast:
		return live, nil
	case ModeTargeted:
		if target == "" {
			return nil, apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument,
				"routing_mode targeted needs target_agent (an agent id or agent_id/instance_id)", "field", "options.target_agent")
		}
		var out []*registry.RouteInstance
		for _, in := range live {
			if in.Key() == target {
				return []*registry.RouteInstance{in}, nil
			}
			if in.Agent == target {
				out = append(out, in)
			}
		}
		if len(out) == 0 {
			return nil, apierr.New(codes.NotFound, apierr.CodeTargetNotFound,
				"target "+target+" does not serve this function (see `croupier registry list`)", "target_agent", target)
		}
		return []*registry.RouteInstance{leastLoaded(out, remote)}, nil
	case ModeHash:
		if hashKey == "" {
			return nil, apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument,
				"routing_mode hash needs options.hash_key", "field", "options.hash_key")
		}
		in, _ := rt.Owner(hashKey) // live is not empty, so neither is the ring
		return []*registry.RouteInstance{in}, nil
	default:
		return nil, apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument,
			"unknown routing_mode "+mode+"; use lb, broadcast, targeted or hash", "field", "options.routing_mode")
	}
}

// remotePenalty is what an instance on another node adds to its load in
// lb: a forwarded call costs both nodes about as much CPU again as a
// direct one (docs/cluster.md, "Numbers"). The in-flight counts are this
// node's own calls.
const remotePenalty = 1

// leastLoaded picks from a non-empty list: the least loaded of all of them
// (ties at random) up to scanLimit, of two random ones beyond.
func leastLoaded(live []*registry.RouteInstance, remote func(agent string) bool) *registry.RouteInstance {
	load := func(in *registry.RouteInstance) int64 {
		n := in.InFlight()
		if remote != nil && remote(in.Agent) {
			n += remotePenalty
		}
		return n
	}
	if n := len(live); n > scanLimit {
		a, b := rand.IntN(n), rand.IntN(n-1)
		if b >= a {
			b++ // two distinct instances
		}
		if load(live[b]) < load(live[a]) {
			return live[b]
		}
		return live[a]
	}
	best, ties := 0, 1
	for i := 1; i < len(live); i++ {
		switch c, m := load(live[i]), load(live[best]); {
		case c < m:
			best, ties = i, 1
		case c == m:
			// Reservoir sampling: the k-th tie replaces the pick with
			// probability 1/k, giving each tie an equal chance in one pass.
			ties++
			if rand.IntN(ties) == 0 {
				best = i
			}
		}
	}
	return live[best]
}
