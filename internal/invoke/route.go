package invoke

import (
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/registry"
	"github.com/croupier/croupier/internal/routing"
	"google.golang.org/grpc/codes"
)

// Routing modes of InvokeOptions.routing_mode.
const (
	ModeLB        = "lb"
	ModeBroadcast = "broadcast"
	ModeTargeted  = "targeted"
	ModeHash      = "hash"
)

// router picks instances for a call. Hash rings are cached per membership so
// hash routing does not rebuild a ring on every call.
type router struct {
	inflight *routing.InFlight
	rings    *routing.RingCache
}

func newRouter() *router {
	return &router{inflight: routing.NewInFlight(), rings: routing.NewRingCache(64, 128)}
}

// pick returns the instances a call goes to, in the given mode.
func (r *router) pick(mode, target, hashKey string, live []registry.InstanceRef) ([]registry.InstanceRef, error) {
	switch mode {
	case "", ModeLB:
		cands := make([]routing.Candidate, len(live))
		for i, in := range live {
			cands[i] = routing.Candidate{Key: in.Key(), Agent: in.Agent, InFlight: r.inflight.Get(in.Key())}
		}
		c, _ := routing.LeastLoaded(cands)
		for _, in := range live {
			if in.Key() == c.Key {
				return []registry.InstanceRef{in}, nil
			}
		}
		return live[:1], nil
	case ModeBroadcast:
		return live, nil
	case ModeTargeted:
		if target == "" {
			return nil, apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument,
				"routing_mode targeted needs target_agent (an agent id or agent_id/instance_id)", "field", "options.target_agent")
		}
		var out []registry.InstanceRef
		for _, in := range live {
			if in.Key() == target {
				return []registry.InstanceRef{in}, nil
			}
			if in.Agent == target {
				out = append(out, in)
			}
		}
		if len(out) == 0 {
			return nil, apierr.New(codes.NotFound, apierr.CodeTargetNotFound,
				"target "+target+" does not serve this function (see `croupier registry list`)", "target_agent", target)
		}
		if len(out) > 1 {
			return r.pick(ModeLB, "", "", out)
		}
		return out, nil
	case ModeHash:
		if hashKey == "" {
			return nil, apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument,
				"routing_mode hash needs options.hash_key", "field", "options.hash_key")
		}
		ring := r.ring(live)
		key, _ := ring.Get(hashKey)
		for _, in := range live {
			if in.Key() == key {
				return []registry.InstanceRef{in}, nil
			}
		}
		return live[:1], nil
	default:
		return nil, apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument,
			"unknown routing_mode "+mode+"; use lb, broadcast, targeted or hash", "field", "options.routing_mode")
	}
}

func (r *router) ring(live []registry.InstanceRef) *routing.Ring {
	keys := make([]string, len(live))
	for i, in := range live {
		keys[i] = in.Key()
	}
	return r.rings.Ring(keys)
}
