// Package agentdir spreads the control tier over the cluster's server
// nodes. Each node's registry holds every node's agents: a node publishes
// its own agents' registrations on the bus (internal/cluster) and applies
// the others', remembering which node holds each remote agent's tunnel.
// Calls to a remote agent (invoke, job start, job cancel, and any other
// tunnel request through Call, e.g. fleet commands) are forwarded to the
// holder over NATS request/reply with the caller's deadline; the holder
// sends them down its tunnel. Broadcast reaches every node's agents. Routing (internal/invoke over the registry's
// snapshots) is unchanged: a remote instance is an ordinary route instance
// whose calls go through Dir instead of the local tunnel.
//
// Ownership: Dir's sweep goroutine and its bus handlers belong to Dir and
// stop in Close. Lock order: Dir.mu is never held while calling the
// registry, the bus or a tunnel; Dir.pubMu is (it orders one agent's
// updates) and is never taken with Dir.mu held, nor Dir.mu with it.
// Dir.applyMu (serialises applying remote updates) is taken before
// Dir.mu and held while calling the registry, whose Changed hook takes
// Dir.mu and, for a local agent only, Dir.pubMu; applyMu is never taken
// under either.
package agentdir

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	agentv1 "github.com/croupier/croupier/api/croupier/agent/v1"
	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/cluster"
	"github.com/croupier/croupier/internal/registry"
	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Subjects on the bus.
const (
	subjAgents = "croupier.agents"       // agentUpdate, published by the holder to every node
	subjSync   = "croupier.agents.sync." // + node id: "send me your agents" (request/reply; body: the asking node)
	subjTo     = "croupier.agents.to."   // + node id: agentUpdates sent to that node only (answering a sync)
	subjCall   = "croupier.call."        // + node id: forwarded tunnel calls
	subjAll    = "croupier.broadcast"    // a tunnel request for every node's agents (anypb.Any)

	hdrOrigin = "Croupier-Origin" // the publishing node, on broadcasts
)

// Caller sends calls down this node's own tunnel.
type Caller interface {
	Invoke(ctx context.Context, agent string, req *agentv1.InvokeRequest) (*agentv1.InvokeResponse, error)
	StartJob(ctx context.Context, agent string, req *agentv1.StartJobRequest) (*agentv1.StartJobResponse, error)
	CancelJob(ctx context.Context, agent string, req *agentv1.CancelJobRequest) (*agentv1.CancelJobResponse, error)
}

// Tunnel is this node's end of the agents' tunnels: whether an agent's
// tunnel ends here, and any request down it, left encoded.
type Tunnel interface {
	Connected(name string) bool
	CallAny(ctx context.Context, client string, req *anypb.Any) (*anypb.Any, error)
}

// Config tunes a Dir.
type Config struct {
	// SweepInterval: how often remote agents' liveness is refreshed from
	// membership (default 1 s). A remote agent whose holder left the
	// membership bucket is removed at the next sweep.
	SweepInterval time.Duration
	// Workers bounds the forwarded calls this node serves at once (default 256).
	Workers int
	// Broadcast sends a request to every agent connected to this node
	// (nil: Broadcast reaches no agent here). It runs for broadcasts from
	// any node, with a deadline of BroadcastTimeout.
	Broadcast func(ctx context.Context, req proto.Message)
	// BroadcastTimeout bounds a broadcast received from another node
	// (default 10 s).
	BroadcastTimeout time.Duration
	Logger           *slog.Logger
}

// Dir is one node's view of the cluster's agents.
type Dir struct {
	cfg   Config
	log   *slog.Logger
	node  *cluster.Node
	reg   *registry.Registry
	local Caller
	tun   Tunnel

	mu     sync.RWMutex
	holder map[string]string // remote agent id -> node id
	// last is the newest update applied per remote agent (removals
	// included, so that an older update arriving later is ignored: a
	// sync's updates and live ones come through two subscriptions).
	last map[string]updateRef
	// seq numbers this node's updates; it starts at the Dir's creation
	// time in nanoseconds, so a restarted node's updates are newer.
	seq atomic.Uint64
	// resync: holders one of whose deltas did not follow the update
	// applied here; the sweep asks them again.
	resync map[string]bool
	// applyMu serialises apply (see there). Taken before mu; held while
	// calling the registry, never while calling the bus.
	applyMu sync.Mutex

	// pubMu guards pub: this node's agents as last published. It is held
	// while publishing (calls the registry and the bus), never with mu.
	pubMu sync.Mutex
	pub   map[string]published

	// down has a context per holder node that calls are in flight to,
	// cancelled by the sweep when the node leaves the membership bucket,
	// so those calls fail UNAVAILABLE instead of waiting out their
	// deadline.
	down map[string]nodeDown
	// away has a context per remote agent that calls are in flight to,
	// cancelled when the agent stops being held by that node (it connects
	// here or another node publishes it): its calls fail UNAVAILABLE then,
	// instead of waiting for an old holder that may have died and is not
	// swept yet (up to the member TTL).
	away map[string]agentAway

	forwarded, direct atomic.Int64
	// nodes is the live member count at the last sweep (rate limits
	// divide by it).
	nodes atomic.Int64
	// synced is how many other live members had answered this node's
	// sync at the last sweep.
	synced atomic.Int64

	stop context.CancelFunc
	wg   sync.WaitGroup
}

type published struct {
	seq   uint64
	agent registry.Agent // without descriptors
	descs [][]byte
}

type updateRef struct {
	node string
	seq  uint64
	// removed counts the sweeps since a removal was applied (0: not a
	// removal); the sweep drops the tombstone after tombstoneSweeps.
	removed int
}

// tombstoneSweeps is how many sweeps a removal is remembered, so that an
// older copy of the agent (a sync's, on the other subscription) arriving
// after it is ignored; that copy left its holder before the removal, so
// it arrives within a few sweep intervals or not at all.
const tombstoneSweeps = 5

type nodeDown struct {
	ctx    context.Context
	cancel context.CancelFunc
}

type agentAway struct {
	holder string
	nodeDown
}

// agentUpdate is one agent's registration as its holder sees it.
type agentUpdate struct {
	Node string `json:"node"`
	Seq  uint64 `json:"seq"` // the holder's; newer updates have higher ones
	// A delta (Delta set) changes only instances, from the holder's
	// update Base: Upsert adds or replaces, Remove drops by id.
	Delta   bool                `json:"delta,omitempty"`
	Base    uint64              `json:"base,omitempty"`
	Upsert  []registry.Instance `json:"upsert,omitempty"`
	Remove  []string            `json:"remove,omitempty"`
	Agent   registry.Agent      `json:"agent"`
	Descs   [][]byte            `json:"descs,omitempty"` // FunctionDescriptor, proto-encoded
	Removed bool                `json:"removed,omitempty"`
}

// New returns a Dir; Start joins the bus.
func New(cfg Config, node *cluster.Node, reg *registry.Registry, local Caller, tun Tunnel) *Dir {
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = time.Second
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 256
	}
	if cfg.BroadcastTimeout <= 0 {
		cfg.BroadcastTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	d := &Dir{cfg: cfg, log: cfg.Logger.With("component", "agentdir"), node: node, reg: reg,
		local: local, tun: tun, holder: map[string]string{}, last: map[string]updateRef{}, down: map[string]nodeDown{}, away: map[string]agentAway{},
		resync: map[string]bool{}, pub: map[string]published{}}
	d.seq.Store(uint64(time.Now().UnixNano()))
	return d
}

// Start subscribes to the bus and starts the sweep, which asks each
// other node for its agents (sync) at once and whenever a node appears.
func (d *Dir) Start(ctx context.Context) error {
	nc := d.node.Conn()
	if _, err := nc.Subscribe(subjAgents, func(m *nats.Msg) { d.apply(m.Data) }); err != nil {
		return err
	}
	if _, err := nc.Subscribe(subjTo+d.node.ID(), func(m *nats.Msg) { d.apply(m.Data) }); err != nil {
		return err
	}
	if err := d.node.Handle(subjSync+d.node.ID(), "", 4, d.serveSync); err != nil {
		return err
	}
	if err := d.node.Handle(subjCall+d.node.ID(), "", d.cfg.Workers, d.serveCall); err != nil {
		return err
	}
	// Broadcasts run one at a time per node, in the subscription's
	// goroutine; the NATS client's pending limits bound the backlog.
	if _, err := nc.Subscribe(subjAll, func(m *nats.Msg) { d.applyBroadcast(ctx, m) }); err != nil {
		return err
	}
	if err := nc.Flush(); err != nil {
		return err
	}
	sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	d.stop = stop
	d.wg.Add(1)
	go d.sweep(sctx)
	return nil
}

// Close stops the sweep. The bus subscriptions end with the node.
func (d *Dir) Close() {
	if d.stop != nil {
		d.stop()
	}
	d.wg.Wait()
}

// Changed is the registry's Options.Changed hook: a change to an agent
// whose tunnel ends here is published to the other nodes.
func (d *Dir) Changed(agentID string) {
	if !d.tun.Connected(agentID) {
		d.mu.Lock()
		_, remote := d.holder[agentID]
		d.mu.Unlock()
		if remote {
			return // a remote agent's update being applied here
		}
	} else {
		d.mu.Lock()
		delete(d.holder, agentID) // it moved here
		d.movedLocked(agentID, "")
		d.mu.Unlock()
	}
	d.publish(agentID)
}

// publish sends an agent's change to every node: only the changed and
// removed instances when nothing else changed since the last update this
// node published for it (a delta, applied with the registry's
// UpdateInstances), else the whole registration; a removal when an agent
// it published is gone. pubMu is held throughout, so one agent's updates leave in
// sequence order and d.pub matches what was sent.
func (d *Dir) publish(agentID string) {
	d.pubMu.Lock()
	defer d.pubMu.Unlock()
	u := agentUpdate{Node: d.node.ID(), Seq: d.seq.Add(1)}
	a, ok := d.reg.Agent(agentID)
	if !ok || !d.tun.Connected(agentID) {
		// Only an agent this node published has a removal to send: the
		// sweep removing a dead node's agents here (and every other
		// survivor doing the same) must not send one each.
		if _, had := d.pub[agentID]; had {
			delete(d.pub, agentID)
			u.Agent = registry.Agent{ID: agentID}
			u.Removed = true
			d.send(subjAgents, u)
		}
		return
	}
	var descs [][]byte
	for _, desc := range a.Descriptors {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(desc)
		if err != nil {
			d.log.Error("descriptor not encodable", "agent", agentID, "err", err)
			return
		}
		descs = append(descs, b)
	}
	a.Descriptors = nil
	prev, had := d.pub[agentID]
	if had && sameAgentFields(prev.agent, a) && slices.EqualFunc(prev.descs, descs, bytes.Equal) {
		u.Delta, u.Base = true, prev.seq
		u.Agent = registry.Agent{ID: agentID}
		u.Upsert, u.Remove = diffInstances(prev.agent.Instances, a.Instances)
	} else {
		u.Agent, u.Descs = a, descs
	}
	d.pub[agentID] = published{seq: u.Seq, agent: a, descs: descs}
	d.send(subjAgents, u)
}

func (d *Dir) send(subject string, u agentUpdate) {
	b, err := json.Marshal(u)
	if err != nil {
		d.log.Error("agent update not encodable", "agent", u.Agent.ID, "err", err)
		return
	}
	if err := d.node.Conn().Publish(subject, b); err != nil {
		d.log.Warn("agent update not published", "agent", u.Agent.ID, "err", err)
	}
}

func sameAgentFields(a, b registry.Agent) bool {
	return a.GameID == b.GameID && a.Env == b.Env && a.Version == b.Version && a.Addr == b.Addr && maps.Equal(a.Labels, b.Labels)
}

// diffInstances returns the instances of cur that are new or differ from
// prev's, and the ids of prev's that cur no longer has.
func diffInstances(prev, cur []registry.Instance) (upsert []registry.Instance, remove []string) {
	old := make(map[string]registry.Instance, len(prev))
	for _, in := range prev {
		old[in.ID] = in
	}
	for _, in := range cur {
		p, ok := old[in.ID]
		if !ok || p.Incarnation != in.Incarnation || !slices.Equal(p.Functions, in.Functions) || !maps.Equal(p.Labels, in.Labels) {
			upsert = append(upsert, in)
		}
		delete(old, in.ID)
	}
	for id := range old {
		remove = append(remove, id)
	}
	slices.Sort(remove)
	return upsert, remove
}

// serveSync answers another node's sync: this node's agents, sent to that
// node only, then an empty reply. A node asks each other node once when it
// starts and when that node (re)appears in membership, so a join costs
// N−1 syncs, not every node republishing to every node.
func (d *Dir) serveSync(_ context.Context, data []byte) ([]byte, error) {
	asker := string(data)
	if !validNodeID(asker) {
		return nil, status.Errorf(codes.InvalidArgument, "sync: %q is not a node id (1-64 letters, digits, '-' or '_')", asker)
	}
	for _, id := range d.localAgents() {
		// The registration as last published, with that update's
		// sequence, so the deltas that follow apply on the asker too.
		d.pubMu.Lock()
		p, ok := d.pub[id]
		if ok {
			d.send(subjTo+asker, agentUpdate{Node: d.node.ID(), Seq: p.seq, Agent: p.agent, Descs: p.descs})
		}
		d.pubMu.Unlock()
	}
	return nil, nil
}

func validNodeID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if r != '-' && r != '_' && (r < '0' || r > '9') && (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') {
			return false
		}
	}
	return true
}

func (d *Dir) localAgents() []string {
	var ids []string
	for _, id := range d.reg.Expired(time.Now().Add(time.Hour)) { // every agent
		if d.tun.Connected(id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// apply applies one agent update from another node. It runs on two
// subscriptions' goroutines (live updates and sync answers), so applyMu
// serialises it whole: the sequence check, the registry write and the
// record in last happen as one step, so an older update can never be
// written after a newer one.
func (d *Dir) apply(data []byte) {
	var u agentUpdate
	if err := json.Unmarshal(data, &u); err != nil {
		d.log.Warn("undecodable agent update", "err", err)
		return
	}
	if u.Node == d.node.ID() || d.tun.Connected(u.Agent.ID) {
		return // ours, or stale news of an agent that has since moved here
	}
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	d.mu.Lock()
	l, ok := d.last[u.Agent.ID]
	if ok && l.node == u.Node && u.Seq <= l.seq {
		d.mu.Unlock()
		return // older than one applied
	}
	if u.Delta && (!ok || l.node != u.Node || l.seq != u.Base || l.removed > 0) {
		d.resync[u.Node] = true // an update was missed: ask for the whole registration
		d.mu.Unlock()
		return
	}
	d.mu.Unlock()
	// last records an update only once it is applied: a failed one must
	// not make the next copy of it (the resync's) look old.
	if !d.applyUpdate(u) {
		return
	}
	d.mu.Lock()
	ref := updateRef{node: u.Node, seq: u.Seq}
	if u.Removed {
		ref.removed = 1 // a tombstone, expired by the sweep
	}
	d.last[u.Agent.ID] = ref
	d.mu.Unlock()
}

// applyUpdate writes u into the registry; false if it could not (the
// holder is then asked again at the next sweep).
func (d *Dir) applyUpdate(u agentUpdate) bool {
	if u.Delta {
		if err := d.reg.UpdateInstances(u.Agent.ID, u.Upsert, u.Remove, nil); err != nil {
			d.log.Warn("remote agent delta not applied; asking its node again", "agent", u.Agent.ID, "node", u.Node, "err", err)
			d.mu.Lock()
			delete(d.last, u.Agent.ID)
			d.resync[u.Node] = true
			d.mu.Unlock()
			return false
		}
		return true
	}
	if u.Removed {
		d.mu.Lock()
		owned := d.holder[u.Agent.ID] == u.Node
		d.mu.Unlock()
		if owned {
			d.reg.Remove(u.Agent.ID)
			d.mu.Lock()
			if d.holder[u.Agent.ID] == u.Node {
				delete(d.holder, u.Agent.ID)
				d.movedLocked(u.Agent.ID, "")
			}
			d.mu.Unlock()
		}
		return true
	}
	for _, b := range u.Descs {
		desc := &croupierv1.FunctionDescriptor{}
		if err := proto.Unmarshal(b, desc); err != nil {
			d.log.Warn("undecodable descriptor in agent update", "agent", u.Agent.ID, "node", u.Node, "err", err)
			return false
		}
		u.Agent.Descriptors = append(u.Agent.Descriptors, desc)
	}
	// The holder is recorded before the write, so that the registry's
	// Changed hook sees a remote agent and does not publish it.
	d.mu.Lock()
	prev, had := d.holder[u.Agent.ID]
	d.holder[u.Agent.ID] = u.Node
	d.movedLocked(u.Agent.ID, u.Node) // calls forwarded to another holder
	d.mu.Unlock()
	u.Agent.LastHeartbeat = time.Now()
	if err := d.reg.Upsert(u.Agent); err != nil {
		d.log.Warn("remote agent not applied", "agent", u.Agent.ID, "node", u.Node, "err", err)
		d.mu.Lock()
		if had {
			d.holder[u.Agent.ID] = prev
		} else {
			delete(d.holder, u.Agent.ID)
		}
		d.movedLocked(u.Agent.ID, prev) // "" if it had none
		d.mu.Unlock()
		return false
	}
	return true
}

// sweep keeps remote agents alive in the registry while their holder is a
// member, and removes them once it is not.
func (d *Dir) sweep(ctx context.Context) {
	defer d.wg.Done()
	t := time.NewTicker(d.cfg.SweepInterval)
	defer t.Stop()
	// synced: the members whose agents this node has asked for since they
	// (re)appeared. A node that leaves membership is forgotten, so when it
	// comes back (a lapsed heartbeat while it kept running: its agents
	// were removed here) it is asked again.
	synced := map[string]bool{}
	for first := true; ; first = false {
		if !first {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
		d.mu.Lock()
		for n := range d.resync {
			delete(synced, n)
		}
		clear(d.resync)
		d.mu.Unlock()
		mctx, cancel := context.WithTimeout(ctx, d.cfg.SweepInterval)
		members, err := d.node.Members(mctx)
		cancel()
		if err != nil {
			continue // the bus is down: keep what we know
		}
		d.nodes.Store(int64(max(1, len(members))))
		alive := map[string]bool{}
		var ask []string
		for _, m := range members {
			alive[m] = true
			if m != d.node.ID() && !synced[m] {
				ask = append(ask, m)
			}
		}
		// Until a node answers, e.g. while the route to it forms, updates
		// it published before then did not reach here: it is asked again
		// at the next sweep.
		for m, ok := range d.syncAll(ctx, ask) {
			synced[m] = ok
		}
		n := 0
		for m, ok := range synced {
			if !alive[m] {
				delete(synced, m)
			} else if ok {
				n++
			}
		}
		d.synced.Store(int64(n))
		live, dead := d.forget(alive)
		now := time.Now()
		for _, id := range live {
			_ = d.reg.Heartbeat(id, now)
		}
		d.removeDead(dead)
	}
}

// forget drops what this node knows of nodes not alive (their agents are
// returned as dead, the rest as live) and ages the removals' tombstones.
func (d *Dir) forget(alive map[string]bool) (live, dead []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, n := range d.holder {
		if alive[n] {
			live = append(live, id)
		} else {
			dead = append(dead, id)
			delete(d.holder, id)
			d.movedLocked(id, "")
		}
	}
	for id, l := range d.last {
		switch {
		case !alive[l.node] || l.removed > tombstoneSweeps:
			delete(d.last, id)
		case l.removed > 0:
			l.removed++
			d.last[id] = l
		}
	}
	for n, dn := range d.down {
		if !alive[n] {
			dn.cancel()
			delete(d.down, n)
		}
	}
	return live, dead
}

// removeDead removes the agents of nodes that left, unless one came back
// meanwhile: connected here, or re-registered through another node (an
// update applied since forget; applyMu keeps one from landing between the
// check and the removal).
func (d *Dir) removeDead(dead []string) {
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	for _, id := range dead {
		d.mu.Lock()
		_, back := d.holder[id]
		d.mu.Unlock()
		if !back && !d.tun.Connected(id) && d.reg.Remove(id) {
			d.log.Info("holder node left the cluster; remote agent removed", "agent", id)
		}
	}
}

// maxSyncs bounds the syncs one sweep runs at once.
const maxSyncs = 8

// syncAll asks nodes for their agents, up to maxSyncs at a time, so that
// one silent member costs the sweep one SweepInterval, not one each. It
// returns which answered.
func (d *Dir) syncAll(ctx context.Context, nodes []string) map[string]bool {
	res := make(map[string]bool, len(nodes))
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxSyncs)
	for _, n := range nodes {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			ok := d.sync(ctx, n)
			mu.Lock()
			res[n] = ok
			mu.Unlock()
		}()
	}
	wg.Wait()
	return res
}

// sync asks node for its agents; they arrive on subjTo before the reply.
func (d *Dir) sync(ctx context.Context, node string) bool {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.SweepInterval)
	defer cancel()
	if _, err := d.node.Request(ctx, subjSync+node, []byte(d.node.ID())); err != nil {
		d.log.Debug("agent sync not answered yet; retrying at the next sweep", "node", node, "err", err)
		return false
	}
	return true
}

// Nodes is the number of live server nodes seen at the last sweep (1
// before the first).
func (d *Dir) Nodes() int { return int(max(1, d.nodes.Load())) }

// Holder returns the node holding a remote agent's tunnel ("" for a local
// or unknown agent).
func (d *Dir) Holder(agentID string) string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.holder[agentID]
}

// Remote reports whether agent's tunnel ends on another node, so that a
// call to it would be forwarded (invoke.Deps.Remote).
func (d *Dir) Remote(agent string) bool { return d.Holder(agent) != "" }

// Forwarded and Direct count the calls this node forwarded to another
// node and sent down its own tunnel.
func (d *Dir) Forwarded() int64 { return d.forwarded.Load() }
func (d *Dir) Direct() int64    { return d.direct.Load() }

// call kinds on the wire.
const (
	kindInvoke    = 1
	kindStartJob  = 2
	kindCancelJob = 3
	kindAny       = 4 // Call: an anypb.Any request, answered with an anypb.Any
)

var kindNames = map[uint64]string{kindInvoke: "invoke", kindStartJob: "start_job", kindCancelJob: "cancel_job", kindAny: "any"}

// A forwarded call's body is protobuf wire format, hand-encoded (three
// fields; no generated type is worth it): 1 kind (varint), 2 agent
// (string), 3 the request (bytes, the request message encoded). It was
// JSON, whose decoding took ~8 % of a forwarded call's CPU
// (BenchmarkInvoke/forwarded).
const (
	envKind  protowire.Number = 1
	envAgent protowire.Number = 2
	envReq   protowire.Number = 3
)

type callEnvelope struct {
	kind  uint64
	agent string
	req   []byte
}

func encodeCall(kind uint64, agent string, req proto.Message) ([]byte, error) {
	b := make([]byte, 0, 16+len(agent)+proto.Size(req))
	b = protowire.AppendTag(b, envKind, protowire.VarintType)
	b = protowire.AppendVarint(b, kind)
	b = protowire.AppendTag(b, envAgent, protowire.BytesType)
	b = protowire.AppendString(b, agent)
	b = protowire.AppendTag(b, envReq, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(proto.Size(req)))
	return proto.MarshalOptions{}.MarshalAppend(b, req)
}

func decodeCall(b []byte) (callEnvelope, error) {
	var env callEnvelope
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return env, protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case num == envKind && typ == protowire.VarintType:
			env.kind, n = protowire.ConsumeVarint(b)
		case num == envAgent && typ == protowire.BytesType:
			env.agent, n = protowire.ConsumeString(b)
		case num == envReq && typ == protowire.BytesType:
			env.req, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return env, protowire.ParseError(n)
		}
		b = b[n:]
	}
	return env, nil
}

// forward returns the holder to forward to, or "" to call locally.
func (d *Dir) forward(agent string) string {
	if d.tun.Connected(agent) {
		d.direct.Add(1)
		return ""
	}
	h := d.Holder(agent)
	if h == "" {
		d.direct.Add(1)
	} else {
		d.forwarded.Add(1)
	}
	return h
}

func remoteCall[Resp proto.Message](ctx context.Context, d *Dir, holder string, kind uint64, agent string, req proto.Message, resp Resp) (Resp, error) {
	var zero Resp
	env, err := encodeCall(kind, agent, req)
	if err != nil {
		return zero, status.Errorf(codes.Internal, "encode %s: %v", kindNames[kind], err)
	}
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// No goroutine per call: the holder's down context and the agent's
	// away context run the cancel.
	defer context.AfterFunc(d.downCtx(holder), func() { cancel(errHolderGone) })()
	defer context.AfterFunc(d.awayCtx(agent, holder), func() { cancel(errAgentMoved) })()
	out, err := d.node.Request(cctx, subjCall+holder, env)
	if err != nil {
		switch cause := context.Cause(cctx); {
		case ctx.Err() != nil:
		case cause == errHolderGone:
			return zero, status.Errorf(codes.Unavailable, "node %s holding agent %q left the cluster during the call; retry (with the same idempotency key)", holder, agent)
		case cause == errAgentMoved:
			return zero, status.Errorf(codes.Unavailable, "agent %q moved away from node %s during the call; retry (with the same idempotency key)", agent, holder)
		}
		return zero, err
	}
	if err := proto.Unmarshal(out, resp); err != nil {
		return zero, status.Errorf(codes.Internal, "decode %s reply from node %s: %v", kindNames[kind], holder, err)
	}
	return resp, nil
}

var (
	errHolderGone = errors.New("holder node left the cluster")
	errAgentMoved = errors.New("agent moved to another node")
)

// awayCtx returns the context that ends when agent stops being held by
// holder (already ended if it has).
func (d *Dir) awayCtx(agent, holder string) context.Context {
	d.mu.Lock()
	defer d.mu.Unlock()
	a, ok := d.away[agent]
	if ok && a.holder == holder {
		return a.ctx
	}
	ctx, cancel := context.WithCancel(context.Background())
	if d.holder[agent] != holder { // it moved since the call chose holder
		cancel()
		return ctx
	}
	if ok {
		a.cancel() // for an older holder: those calls' agent has moved
	}
	d.away[agent] = agentAway{holder: holder, nodeDown: nodeDown{ctx: ctx, cancel: cancel}}
	return ctx
}

// movedLocked ends agent's away context unless it is for holder, the
// agent's holder now ("" when no other node holds it). d.mu is held.
func (d *Dir) movedLocked(agent, holder string) {
	if a, ok := d.away[agent]; ok && a.holder != holder {
		a.cancel()
		delete(d.away, agent)
	}
}

// downCtx returns the context that the sweep cancels when node leaves
// the membership bucket.
func (d *Dir) downCtx(node string) context.Context {
	d.mu.Lock()
	defer d.mu.Unlock()
	dn, ok := d.down[node]
	if !ok {
		dn.ctx, dn.cancel = context.WithCancel(context.Background())
		d.down[node] = dn
	}
	return dn.ctx
}

// Invoke implements invoke.Caller across nodes.
func (d *Dir) Invoke(ctx context.Context, agent string, req *agentv1.InvokeRequest) (*agentv1.InvokeResponse, error) {
	if h := d.forward(agent); h != "" {
		return remoteCall(ctx, d, h, kindInvoke, agent, req, &agentv1.InvokeResponse{})
	}
	return d.local.Invoke(ctx, agent, req)
}

// StartJob implements jobs' caller across nodes.
func (d *Dir) StartJob(ctx context.Context, agent string, req *agentv1.StartJobRequest) (*agentv1.StartJobResponse, error) {
	if h := d.forward(agent); h != "" {
		return remoteCall(ctx, d, h, kindStartJob, agent, req, &agentv1.StartJobResponse{})
	}
	return d.local.StartJob(ctx, agent, req)
}

// CancelJob implements jobs' caller across nodes.
func (d *Dir) CancelJob(ctx context.Context, agent string, req *agentv1.CancelJobRequest) (*agentv1.CancelJobResponse, error) {
	if h := d.forward(agent); h != "" {
		return remoteCall(ctx, d, h, kindCancelJob, agent, req, &agentv1.CancelJobResponse{})
	}
	return d.local.CancelJob(ctx, agent, req)
}

// Call sends any tunnel request to an agent, through the node holding its
// tunnel (fleet.Caller); the response type must be linked into this
// binary, as with tunnel.Server.Call.
func (d *Dir) Call(ctx context.Context, agent string, req proto.Message) (proto.Message, error) {
	in, err := anypb.New(req)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "encode tunnel request: %v", err)
	}
	var out *anypb.Any
	if h := d.forward(agent); h != "" {
		out, err = remoteCall(ctx, d, h, kindAny, agent, in, &anypb.Any{})
	} else {
		out, err = d.tun.CallAny(ctx, agent, in)
	}
	if err != nil {
		return nil, err
	}
	m, err := out.UnmarshalNew()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "decoding %s from agent %q: %v", out.GetTypeUrl(), agent, err)
	}
	return m, nil
}

// Broadcast sends req to every agent of every node (Config.Broadcast on
// each node, this one included), best effort: it waits for this node's
// agents only.
func (d *Dir) Broadcast(ctx context.Context, req proto.Message) {
	if in, err := anypb.New(req); err != nil {
		d.log.Error("broadcast not encodable", "err", err)
	} else if b, err := proto.Marshal(in); err != nil {
		d.log.Error("broadcast not encodable", "err", err)
	} else if err := d.node.Conn().PublishMsg(&nats.Msg{Subject: subjAll, Data: b,
		Header: nats.Header{hdrOrigin: []string{d.node.ID()}}}); err != nil {
		d.log.Warn("broadcast not published to the other nodes", "type", in.GetTypeUrl(), "err", err)
	}
	if d.cfg.Broadcast != nil {
		d.cfg.Broadcast(ctx, req)
	}
}

func (d *Dir) applyBroadcast(ctx context.Context, m *nats.Msg) {
	// Our own publication comes back too; Broadcast already ran it here.
	if d.cfg.Broadcast == nil || m.Header.Get(hdrOrigin) == d.node.ID() {
		return
	}
	in := &anypb.Any{}
	if err := proto.Unmarshal(m.Data, in); err != nil {
		d.log.Warn("undecodable broadcast", "err", err)
		return
	}
	req, err := in.UnmarshalNew()
	if err != nil {
		d.log.Warn("undecodable broadcast", "type", in.GetTypeUrl(), "err", err)
		return
	}
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.BroadcastTimeout)
	defer cancel()
	d.cfg.Broadcast(bctx, req)
}

// serveCall runs a call another node forwarded here. The agent must still
// be connected here: a call is forwarded at most once, so two nodes with
// stale views cannot bounce it between them.
func (d *Dir) serveCall(ctx context.Context, data []byte) ([]byte, error) {
	env, err := decodeCall(data)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "undecodable forwarded call: %v", err)
	}
	if !d.tun.Connected(env.agent) {
		return nil, status.Errorf(codes.Unavailable, "agent %q is no longer connected to node %s; retry", env.agent, d.node.ID())
	}
	var resp proto.Message
	switch env.kind {
	case kindInvoke:
		req := &agentv1.InvokeRequest{}
		if err = proto.Unmarshal(env.req, req); err == nil {
			resp, err = d.local.Invoke(ctx, env.agent, req)
		}
	case kindStartJob:
		req := &agentv1.StartJobRequest{}
		if err = proto.Unmarshal(env.req, req); err == nil {
			resp, err = d.local.StartJob(ctx, env.agent, req)
		}
	case kindCancelJob:
		req := &agentv1.CancelJobRequest{}
		if err = proto.Unmarshal(env.req, req); err == nil {
			resp, err = d.local.CancelJob(ctx, env.agent, req)
		}
	case kindAny:
		req := &anypb.Any{}
		if err = proto.Unmarshal(env.req, req); err == nil {
			resp, err = d.tun.CallAny(ctx, env.agent, req)
		}
	default:
		return nil, status.Errorf(codes.InvalidArgument, "unknown forwarded call kind %d", env.kind)
	}
	if err != nil {
		return nil, err
	}
	b, err := proto.Marshal(resp)
	if err != nil {
		return nil, fmt.Errorf("encode reply: %w", err)
	}
	return b, nil
}
