package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// LeasesBucket is the NATS KV bucket holding publisher leases, one key
// per stream path (<room_id>/<name>).
const LeasesBucket = "croupier_live_leases"

// KVLeases is Leases in a NATS JetStream KV bucket shared by the cluster's
// gateway nodes (docs/live.md, "Leases and fencing").
//
// A lease is the key of its stream, created with Create (refused while
// the key exists) and renewed with compare-and-set Updates; the bucket's
// TTL removes a key nobody renews, and leaves a marker (the bucket's
// LimitMarkerTTL) that watchers see. The epoch is the revision of the
// Create: revisions grow across the whole bucket, so a new lease's epoch
// is above every epoch before it, however the old lease ended.
//
// Safe for concurrent use.
type KVLeases struct {
	kv  jetstream.KeyValue
	ttl time.Duration
	log *slog.Logger

	mu   sync.Mutex
	held map[string]heldLease // leases this node took, by path
}

type heldLease struct {
	epoch int64
	rev   uint64 // the key's latest revision, for compare-and-set
	val   []byte
}

// leaseValue is a lease key's value. Epoch is 0 in the value the Create
// writes (the epoch is that entry's revision, unknown before it is
// written) and set in every renewal.
type leaseValue struct {
	Node  string `json:"node"`
	Relay string `json:"relay,omitempty"`
	Epoch int64  `json:"epoch,omitempty"`
}

// KVLeasesConfig configures NewKVLeases.
type KVLeasesConfig struct {
	// TTL is how long a lease lives unrenewed (the bucket's TTL, the same
	// on every node: the last node to start sets it); default 10 s, at
	// least 1 s.
	TTL time.Duration
	// Replicas of the bucket (the NATS cluster's size, at most 5);
	// default 1.
	Replicas int
	Logger   *slog.Logger
}

// NewKVLeases creates (or updates) the leases bucket.
func NewKVLeases(ctx context.Context, js jetstream.JetStream, cfg KVLeasesConfig) (*KVLeases, error) {
	if cfg.TTL <= 0 {
		cfg.TTL = 10 * time.Second
	}
	if cfg.TTL < time.Second {
		return nil, fmt.Errorf("live: lease TTL %v is below 1s; raise it", cfg.TTL)
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: LeasesBucket, Description: "croupier live stream publisher leases",
		// Markers and a short history outlive the claim, so a watcher
		// that lags behind (a loaded node) still sees the expiry.
		TTL: cfg.TTL, LimitMarkerTTL: max(cfg.TTL, time.Minute), History: 4, MaxValueSize: 1024,
		Replicas: cfg.Replicas, Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("live: leases bucket %s: %w", LeasesBucket, err)
	}
	return &KVLeases{kv: kv, ttl: cfg.TTL, log: cfg.Logger, held: map[string]heldLease{}}, nil
}

// TTL is the leases' time to live.
func (l *KVLeases) TTL() time.Duration { return l.ttl }

// Acquire implements Leases.
func (l *KVLeases) Acquire(ctx context.Context, path string, h Holder) (int64, error) {
	val, err := json.Marshal(leaseValue{Node: h.NodeID, Relay: h.RelayAddr})
	if err != nil {
		return 0, err
	}
	rev, err := l.kv.Create(ctx, path, val)
	if errors.Is(err, jetstream.ErrKeyExists) {
		rev, err = l.takeOver(ctx, path, h, val)
	}
	if err != nil {
		return 0, fmt.Errorf("live: take lease of %s: %w", path, err)
	}
	epoch := int64(rev)
	val, _ = json.Marshal(leaseValue{Node: h.NodeID, Relay: h.RelayAddr, Epoch: epoch})
	l.mu.Lock()
	l.held[path] = heldLease{epoch: epoch, rev: rev, val: val}
	l.mu.Unlock()
	return epoch, nil
}

// takeOver takes a live lease that names this node as holder but that
// this process did not take: it is a previous process's of the same node,
// which crashed and was restarted within the TTL. Any other holder's
// lease is refused with ErrLeaseHeld.
func (l *KVLeases) takeOver(ctx context.Context, path string, h Holder, val []byte) (uint64, error) {
	l.mu.Lock()
	_, mine := l.held[path]
	l.mu.Unlock()
	e, err := l.kv.Get(ctx, path)
	if err != nil {
		return 0, ErrLeaseHeld // gone meanwhile: the publisher may retry
	}
	if v, err := decodeLease(e); mine || err != nil || v.Node != h.NodeID {
		return 0, ErrLeaseHeld
	}
	rev, err := l.kv.Update(ctx, path, val, e.Revision())
	if err != nil {
		return 0, ErrLeaseHeld
	}
	l.log.Info("live: took over this node's lease from its previous process", "stream", path, "epoch", rev)
	return rev, nil
}

// Renew implements Leases.
func (l *KVLeases) Renew(ctx context.Context, path string, epoch int64) error {
	l.mu.Lock()
	h, ok := l.held[path]
	l.mu.Unlock()
	if !ok || h.epoch != epoch {
		return ErrLeaseLost
	}
	rev, err := l.kv.Update(ctx, path, h.val, h.rev)
	l.mu.Lock()
	defer l.mu.Unlock()
	if cur, ok := l.held[path]; !ok || cur.epoch != epoch {
		return ErrLeaseLost // released meanwhile
	}
	switch {
	case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
		// The key expired (a marker follows our revision) or another
		// node took it.
		delete(l.held, path)
		return ErrLeaseLost
	case err != nil:
		return fmt.Errorf("live: renew lease of %s: %w", path, err)
	}
	h.rev = rev
	l.held[path] = h
	return nil
}

// Release implements Leases.
func (l *KVLeases) Release(ctx context.Context, path string, epoch int64) error {
	l.mu.Lock()
	h, ok := l.held[path]
	if ok && h.epoch == epoch {
		delete(l.held, path)
	}
	l.mu.Unlock()
	if !ok || h.epoch != epoch {
		return nil
	}
	err := l.kv.Delete(ctx, path, jetstream.LastRevision(h.rev))
	if err != nil && !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return fmt.Errorf("live: release lease of %s: %w", path, err)
	}
	return nil
}

// Lookup implements Leases.
func (l *KVLeases) Lookup(ctx context.Context, path string) (Holder, int64, bool, error) {
	e, err := l.kv.Get(ctx, path)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return Holder{}, 0, false, nil
	}
	if err != nil {
		return Holder{}, 0, false, fmt.Errorf("live: look lease of %s up: %w", path, err)
	}
	v, err := decodeLease(e)
	if err != nil {
		return Holder{}, 0, false, err
	}
	return Holder{NodeID: v.Node, RelayAddr: v.Relay}, v.Epoch, true, nil
}

func decodeLease(e jetstream.KeyValueEntry) (leaseValue, error) {
	var v leaseValue
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return v, fmt.Errorf("live: lease of %s: bad value: %w", e.Key(), err)
	}
	if v.Epoch == 0 {
		v.Epoch = int64(e.Revision())
	}
	return v, nil
}

// Watch reports every change of the cluster's leases to fn, from the
// current ones on, until ctx ends: taken (a new epoch), released (its
// node stopped it) and expired (its node stopped renewing: it died or
// lost NATS). Of the nodes watching, exactly one gets each expiry with
// Announce set: the one whose compare-and-set delete of the expiry
// marker won, so the room hears STOPPED once. fn runs on Watch's
// goroutine. Watch restarts the watch when NATS drops it.
func (l *KVLeases) Watch(ctx context.Context, fn func(LeaseChange)) {
	known := map[string]LeaseChange{} // latest lease of each path seen
	for ctx.Err() == nil {
		w, err := l.kv.WatchAll(ctx)
		if err == nil {
			l.watch(ctx, w, known, fn)
			_ = w.Stop()
		} else {
			l.log.Warn("live: watching leases failed; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (l *KVLeases) watch(ctx context.Context, w jetstream.KeyWatcher, known map[string]LeaseChange, fn func(LeaseChange)) {
	// current collects the keys of the initial values: a lease known
	// from an earlier watch that is not among them ended while the watch
	// was down, its marker gone too.
	current := map[string]bool{}
	for {
		var e jetstream.KeyValueEntry
		var ok bool
		select {
		case <-ctx.Done():
			return
		case e, ok = <-w.Updates():
			if !ok {
				return
			}
		}
		if e == nil { // the current values have been delivered
			for path, c := range known {
				if !current[path] {
					delete(known, path)
					c.Kind = LeaseReleased
					fn(c)
				}
			}
			current = nil
			continue
		}
		path := e.Key()
		if current != nil {
			current[path] = true
		}
		switch e.Operation() {
		case jetstream.KeyValuePut:
			v, err := decodeLease(e)
			if err != nil {
				l.log.Warn("live: ignoring a lease", "err", err)
				continue
			}
			c := LeaseChange{Kind: LeaseTaken, Path: path, Holder: Holder{NodeID: v.Node, RelayAddr: v.Relay}, Epoch: v.Epoch}
			if old, ok := known[path]; ok && old.Epoch == c.Epoch {
				known[path] = c
				continue // a renewal
			}
			known[path] = c
			fn(c)
		case jetstream.KeyValueDelete:
			if old, ok := known[path]; ok {
				delete(known, path)
				old.Kind = LeaseReleased
				fn(old)
			}
		case jetstream.KeyValuePurge:
			// The bucket's TTL removed the key: its holder stopped
			// renewing. Claim the marker so one node announces it.
			old, ok := known[path]
			if !ok {
				continue // we never saw the lease: nothing to say
			}
			delete(known, path)
			old.Kind = LeaseExpired
			cctx, cancel := context.WithTimeout(ctx, l.ttl)
			err := l.kv.Delete(cctx, path, jetstream.LastRevision(e.Revision()))
			cancel()
			old.Announce = err == nil
			fn(old)
		}
	}
}

// LeaseChangeKind says what happened to a lease.
type LeaseChangeKind int

// The lease changes Watch reports.
const (
	LeaseTaken LeaseChangeKind = iota + 1
	LeaseReleased
	LeaseExpired
)

// LeaseChange is one change of a stream's lease.
type LeaseChange struct {
	Kind   LeaseChangeKind
	Path   string
	Holder Holder
	Epoch  int64
	// Announce: this node is the one to tell the room (LeaseExpired).
	Announce bool
}
