package routing

import "math/rand/v2"

// Candidate is an instance eligible for a call.
type Candidate struct {
	// Key identifies the instance as "agent_id/instance_id".
	Key string
	// Agent is the agent the instance is behind.
	Agent string
	// InFlight is the number of calls the instance is currently serving.
	InFlight int64
}

// LeastLoaded returns the candidate with the fewest calls in flight, or
// false when cands is empty. Ties are broken uniformly at random: picking
// the first would send every call of an idle fleet to one instance.
func LeastLoaded(cands []Candidate) (Candidate, bool) {
	if len(cands) == 0 {
		return Candidate{}, false
	}
	best, ties := 0, 1
	for i := 1; i < len(cands); i++ {
		switch c := cands[i].InFlight; {
		case c < cands[best].InFlight:
			best, ties = i, 1
		case c == cands[best].InFlight:
			// Reservoir sampling: the k-th tie replaces the pick with
			// probability 1/k, giving each tie an equal chance in one pass.
			ties++
			if rand.IntN(ties) == 0 {
				best = i
			}
		}
	}
	return cands[best], true
}
