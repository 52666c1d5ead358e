package routing

import (
	"cmp"
	"slices"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// DefaultVirtualNodes is the number of ring points per member when NewRing
// is given none. With 128 points a member's share of keys deviates from
// the even share by about 1/sqrt(128) ≈ 9% (one σ); measured over 200k
// keys the worst member of 10 was 10% off and of 50 was 31% off. A ring of
// 100 members is ~200 KiB and takes ~2 ms to build, so cache rings per
// membership (registry.Route builds one per membership, on first use)
// rather than building one per call.
const DefaultVirtualNodes = 128

// Ring is a consistent-hash ring: a key maps to the same member while the
// membership is unchanged, and when one of N members joins or leaves only
// about 1/N of the keys move. It is immutable and safe for concurrent use;
// membership changes build a new Ring.
//
// Hashing is xxhash64 over fixed strings, so every server node computes
// the same assignment for the same members and key.
type Ring struct {
	members []string // sorted, unique
	points  []point  // sorted by hash
}

type point struct {
	hash   uint64
	member int32 // index into members
}

// NewRing builds a ring over members (duplicates and empty strings are
// ignored; order does not matter) with vnodes points per member.
func NewRing(members []string, vnodes int) *Ring {
	if vnodes <= 0 {
		vnodes = DefaultVirtualNodes
	}
	ms := slices.Clone(members)
	ms = slices.DeleteFunc(ms, func(m string) bool { return m == "" })
	slices.Sort(ms)
	ms = slices.Compact(ms)

	r := &Ring{members: ms, points: make([]point, 0, len(ms)*vnodes)}
	buf := make([]byte, 0, 64)
	for i, m := range ms {
		for v := range vnodes {
			buf = append(buf[:0], m...)
			buf = append(buf, '#')
			buf = strconv.AppendInt(buf, int64(v), 10)
			r.points = append(r.points, point{hash: xxhash.Sum64(buf), member: int32(i)})
		}
	}
	// Ties between points (hash collisions) are ordered by member name so
	// the ring does not depend on the input order.
	slices.SortFunc(r.points, func(a, b point) int {
		return cmp.Or(cmp.Compare(a.hash, b.hash), cmp.Compare(ms[a.member], ms[b.member]))
	})
	return r
}

// Get returns the member owning key: the first point clockwise from the
// key's hash. It returns false for an empty ring.
func (r *Ring) Get(key string) (string, bool) {
	i, ok := r.Index(key)
	if !ok {
		return "", false
	}
	return r.members[i], true
}

// Index is Get returning the owner's index in Members (sorted order), so
// callers can keep per-member data in a parallel slice.
func (r *Ring) Index(key string) (int, bool) {
	if r == nil || len(r.points) == 0 {
		return 0, false
	}
	h := xxhash.Sum64String(key)
	i, _ := slices.BinarySearchFunc(r.points, h, func(p point, h uint64) int { return cmp.Compare(p.hash, h) })
	if i == len(r.points) {
		i = 0
	}
	return int(r.points[i].member), true
}

// Members returns the ring's members, sorted.
func (r *Ring) Members() []string {
	if r == nil {
		return nil
	}
	return slices.Clone(r.members)
}

// Len returns the number of members.
func (r *Ring) Len() int {
	if r == nil {
		return 0
	}
	return len(r.members)
}
