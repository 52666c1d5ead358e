package schema

import (
	"crypto/sha256"
	"sync"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"google.golang.org/protobuf/proto"
)

// DefaultValidatedCapacity is how many descriptor hashes a Validated
// remembers when NewValidated is given no capacity.
const DefaultValidatedCapacity = 4096

// Validated remembers the outcome of ValidateDescriptor per descriptor
// content (a SHA-256 of its deterministic encoding), so a fleet registering
// the same descriptors compiles each schema once instead of once per
// registration. It is bounded: when full it forgets everything and starts
// over, which costs one recompile per distinct descriptor. Safe for
// concurrent use.
type Validated struct {
	capacity int
	mu       sync.Mutex
	results  map[[sha256.Size]byte]error
}

// NewValidated returns an empty memo holding up to capacity outcomes
// (DefaultValidatedCapacity when <= 0).
func NewValidated(capacity int) *Validated {
	if capacity <= 0 {
		capacity = DefaultValidatedCapacity
	}
	return &Validated{capacity: capacity, results: map[[sha256.Size]byte]error{}}
}

// Validate is ValidateDescriptor, memoised by content.
func (v *Validated) Validate(d *croupierv1.FunctionDescriptor) error {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(d)
	if err != nil || d == nil {
		return ValidateDescriptor(d)
	}
	key := sha256.Sum256(b)
	v.mu.Lock()
	res, ok := v.results[key]
	v.mu.Unlock()
	if ok {
		return res
	}
	res = ValidateDescriptor(d)
	v.mu.Lock()
	if len(v.results) >= v.capacity {
		clear(v.results)
	}
	v.results[key] = res
	v.mu.Unlock()
	return res
}

// Len returns the number of remembered outcomes, for tests.
func (v *Validated) Len() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.results)
}
