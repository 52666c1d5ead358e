package live

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Holder is who holds a stream's publisher lease: the node and the address
// of its StreamRelayService.
type Holder struct {
	NodeID    string
	RelayAddr string
}

// ErrLeaseHeld: another node publishes the stream and its lease lives.
var ErrLeaseHeld = errors.New("live: the stream is published on another node")

// ErrLeaseLost: the lease expired or was taken with a higher epoch.
var ErrLeaseLost = errors.New("live: publisher lease lost")

// Leases is the cluster's record of which node publishes each stream, with
// a fencing epoch that grows with every new publisher. A lease lives while
// its holder renews it within the TTL, so a dead node's streams become
// publishable elsewhere, with a higher epoch, after one TTL.
type Leases interface {
	// Acquire takes path's lease for h; ErrLeaseHeld if another holder's
	// lease lives. The epoch is greater than any before for path.
	Acquire(ctx context.Context, path string, h Holder) (epoch int64, err error)
	// Renew extends the lease; ErrLeaseLost if epoch no longer holds it.
	Renew(ctx context.Context, path string, epoch int64) error
	// Release ends the lease if epoch still holds it.
	Release(ctx context.Context, path string, epoch int64) error
	// Lookup returns the live lease of path; ok false if none.
	Lookup(ctx context.Context, path string) (h Holder, epoch int64, ok bool, err error)
	// TTL is how long a lease lives unrenewed; holders renew it every
	// third of it.
	TTL() time.Duration
	// Watch reports lease changes to fn until ctx ends (KVLeases.Watch).
	Watch(ctx context.Context, fn func(LeaseChange))
}

// MemLeases is Leases in memory, for a node without a cluster bus (NATS
// off): one node alone, so nobody else watches, takes or relays its
// streams. Safe for concurrent use.
type MemLeases struct {
	ttl time.Duration
	now func() time.Time

	mu     sync.Mutex
	leases map[string]*memLease
}

type memLease struct {
	h       Holder
	epoch   int64
	expires time.Time
	held    bool
}

// NewMemLeases returns in-memory leases living ttl after each renewal;
// now is the clock (nil: time.Now).
func NewMemLeases(ttl time.Duration, now func() time.Time) *MemLeases {
	if now == nil {
		now = time.Now
	}
	return &MemLeases{ttl: ttl, now: now, leases: map[string]*memLease{}}
}

func (m *MemLeases) live(l *memLease) bool { return l != nil && l.held && m.now().Before(l.expires) }

// TTL implements Leases.
func (m *MemLeases) TTL() time.Duration { return m.ttl }

// Acquire implements Leases.
func (m *MemLeases) Acquire(_ context.Context, path string, h Holder) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.leases[path]
	if m.live(l) {
		return 0, ErrLeaseHeld
	}
	if l == nil {
		l = &memLease{}
		m.leases[path] = l
	}
	l.h, l.epoch, l.expires, l.held = h, l.epoch+1, m.now().Add(m.ttl), true
	return l.epoch, nil
}

// Renew implements Leases.
func (m *MemLeases) Renew(_ context.Context, path string, epoch int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.leases[path]
	if !m.live(l) || l.epoch != epoch {
		return ErrLeaseLost
	}
	l.expires = m.now().Add(m.ttl)
	return nil
}

// Release implements Leases.
func (m *MemLeases) Release(_ context.Context, path string, epoch int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l := m.leases[path]; l != nil && l.epoch == epoch {
		l.held = false
	}
	return nil
}

// Lookup implements Leases.
func (m *MemLeases) Lookup(_ context.Context, path string) (Holder, int64, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.leases[path]
	if !m.live(l) {
		return Holder{}, 0, false, nil
	}
	return l.h, l.epoch, true, nil
}

// Watch implements Leases: a node alone learns nothing from its own
// leases, so it waits for ctx.
func (m *MemLeases) Watch(ctx context.Context, _ func(LeaseChange)) { <-ctx.Done() }
