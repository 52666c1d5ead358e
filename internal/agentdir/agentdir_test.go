package agentdir_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	agentv1 "github.com/croupier/croupier/api/croupier/agent/v1"
	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/agentdir"
	"github.com/croupier/croupier/internal/cluster"
	"github.com/croupier/croupier/internal/cluster/clustertest"
	"github.com/croupier/croupier/internal/fleet"
	"github.com/croupier/croupier/internal/registry"
	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// fakeTunnel is one node's tunnel: which agents are connected here, and
// calls that answer with the node's id (or block while "block" is the
// invocation id, until released or the call's deadline).
type fakeTunnel struct {
	node string
	mu   sync.Mutex
	up   map[string]bool
	// blocked receives the invocation id of each blocking call as it starts.
	blocked chan string
	// delivered counts the broadcasts each agent connected here received,
	// by request type.
	delivered map[string]map[string]int
}

func (f *fakeTunnel) Connected(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.up[name]
}

func (f *fakeTunnel) set(name string, up bool) {
	f.mu.Lock()
	f.up[name] = up
	f.mu.Unlock()
}

func (f *fakeTunnel) Invoke(ctx context.Context, agent string, req *agentv1.InvokeRequest) (*agentv1.InvokeResponse, error) {
	if !f.Connected(agent) {
		return nil, status.Errorf(codes.Unavailable, "agent %s not connected to %s", agent, f.node)
	}
	if req.GetInvocationId() == "block" {
		f.blocked <- req.GetInvocationId()
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return &agentv1.InvokeResponse{Success: true, InstanceId: f.node}, nil
}

// CallAny answers a FetchProcessLogCommand with "<node>:<path>".
func (f *fakeTunnel) CallAny(ctx context.Context, agent string, req *anypb.Any) (*anypb.Any, error) {
	if !f.Connected(agent) {
		return nil, status.Errorf(codes.Unavailable, "agent %s not connected to %s", agent, f.node)
	}
	cmd := &croupierv1.FetchProcessLogCommand{}
	if err := req.UnmarshalTo(cmd); err != nil {
		return nil, status.Errorf(codes.Unimplemented, "no handler for %s", req.GetTypeUrl())
	}
	return anypb.New(&croupierv1.FetchProcessLogResult{Data: []byte(f.node + ":" + cmd.GetPath())})
}

// broadcast delivers req to every agent connected here, as the tunnel's
// broadcast does, counting deliveries per agent.
func (f *fakeTunnel) broadcast(ctx context.Context, req proto.Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.delivered == nil {
		f.delivered = map[string]map[string]int{}
	}
	kind := string(req.ProtoReflect().Descriptor().Name())
	for agent, up := range f.up {
		if up {
			if f.delivered[agent] == nil {
				f.delivered[agent] = map[string]int{}
			}
			f.delivered[agent][kind]++
		}
	}
}

// deliveries returns how many broadcasts of kind agent received here.
func (f *fakeTunnel) deliveries(agent, kind string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.delivered[agent][kind]
}

func (f *fakeTunnel) StartJob(ctx context.Context, agent string, req *agentv1.StartJobRequest) (*agentv1.StartJobResponse, error) {
	return &agentv1.StartJobResponse{}, nil
}

func (f *fakeTunnel) CancelJob(ctx context.Context, agent string, req *agentv1.CancelJobRequest) (*agentv1.CancelJobResponse, error) {
	return &agentv1.CancelJobResponse{}, nil
}

type testNode struct {
	bus *cluster.Node
	reg *registry.Registry
	tun *fakeTunnel
	dir *agentdir.Dir
}

func startNodes(t *testing.T) []*testNode { return startNodesB(t) }

func startNodesB(t testing.TB) []*testNode {
	buses := clustertest.Start(t, 3, 2*time.Second)
	nodes := make([]*testNode, len(buses))
	for i, b := range buses {
		n := &testNode{bus: b, tun: &fakeTunnel{node: b.ID(), up: map[string]bool{}, blocked: make(chan string, 1)}}
		n.reg = registry.New(registry.Options{Changed: func(id string) { n.dir.Changed(id) }})
		n.dir = agentdir.New(agentdir.Config{SweepInterval: 200 * time.Millisecond, Broadcast: n.tun.broadcast}, b, n.reg, n.tun, n.tun)
		if err := n.dir.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.dir.Close)
		nodes[i] = n
	}
	return nodes
}

func connect(t *testing.T, n *testNode, agent string) { connectB(t, n, agent) }

func connectB(t testing.TB, n *testNode, agent string) {
	t.Helper()
	n.tun.set(agent, true)
	if err := n.reg.Upsert(registry.Agent{ID: agent, GameID: "g", Env: "prod",
		Instances: []registry.Instance{{ID: "i1", Functions: []string{"f"}}}}); err != nil {
		t.Fatal(err)
	}
}

func holderIs(nodes []*testNode, agent, want string, skip ...int) func() error {
	return func() error {
		for i, n := range nodes {
			if len(skip) > 0 && skip[0] == i {
				continue
			}
			if n.bus.ID() == want {
				continue
			}
			if _, ok := n.reg.Agent(agent); !ok {
				return fmt.Errorf("%s does not list %s", n.bus.ID(), agent)
			}
			if h := n.dir.Holder(agent); h != want {
				return fmt.Errorf("%s says %s is held by %q, want %q", n.bus.ID(), agent, h, want)
			}
		}
		return nil
	}
}

// barrier publishes a marker update on subj from each of nodes'
// connections; once a subscriber has seen every marker, it has seen every
// update those nodes published on subj before (one publisher's messages
// arrive in order). Every Dir applies the marker as the removal of an
// unknown agent of an unknown node: it changes nothing.
func barrier(t *testing.T, subj string, nodes ...*testNode) {
	t.Helper()
	for _, n := range nodes {
		b, err := json.Marshal(map[string]any{"node": "barrier-" + n.bus.ID(), "seq": 1, "removed": true, "agent": map[string]string{"id": barrierAgent}})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.bus.Conn().Publish(subj, b); err != nil {
			t.Fatal(err)
		}
	}
}

const barrierAgent = "barrier"

// updateAgent returns the agent id an update on the bus names.
func updateAgent(data []byte) string {
	var u struct {
		Agent struct {
			ID string `json:"id"`
		} `json:"agent"`
	}
	_ = json.Unmarshal(data, &u)
	return u.Agent.ID
}

func TestForwardAcrossNodesAndFailover(t *testing.T) {
	nodes := startNodes(t)
	connect(t, nodes[0], "a1")
	clustertest.CheckFor(t, 10*time.Second, 20*time.Millisecond, holderIs(nodes, "a1", "n1"))

	// A call on n3 reaches the agent through n1's tunnel.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	resp, err := nodes[2].dir.Invoke(ctx, "a1", &agentv1.InvokeRequest{InvocationId: "x"})
	if err != nil || resp.GetInstanceId() != "n1" {
		t.Fatalf("forwarded invoke: %v, %v", resp, err)
	}
	if nodes[2].dir.Forwarded() != 1 {
		t.Fatalf("forwarded %d calls, want 1", nodes[2].dir.Forwarded())
	}

	// The holder's error comes back with its code.
	nodes[0].tun.set("a1", false)
	if _, err := nodes[2].dir.Invoke(ctx, "a1", &agentv1.InvokeRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("call to a disconnected agent: %v; want Unavailable", err)
	}
	nodes[0].tun.set("a1", true)

	// A call in flight when its holder dies fails UNAVAILABLE before its
	// deadline.
	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := nodes[2].dir.Invoke(ctx, "a1", &agentv1.InvokeRequest{InvocationId: "block"})
		errc <- err
	}()
	<-nodes[0].tun.blocked
	start := time.Now()
	nodes[0].dir.Close()
	nodes[0].bus.Kill()
	if err := <-errc; status.Code(err) != codes.Unavailable {
		t.Fatalf("in-flight call on a dead node: %v; want Unavailable", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("in-flight call failed after %v", d)
	}

	// The agent reconnects to n2; n3 routes there.
	connect(t, nodes[1], "a1")
	clustertest.CheckFor(t, 10*time.Second, 20*time.Millisecond, holderIs(nodes, "a1", "n2", 0))
	resp, err = nodes[2].dir.Invoke(ctx, "a1", &agentv1.InvokeRequest{InvocationId: "y"})
	if err != nil || resp.GetInstanceId() != "n2" {
		t.Fatalf("invoke after failover: %v, %v", resp, err)
	}

	// Leaving on its holder removes it everywhere.
	nodes[1].tun.set("a1", false)
	nodes[1].reg.Remove("a1")
	clustertest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if _, ok := nodes[2].reg.Agent("a1"); ok {
			return fmt.Errorf("n3 still lists a1")
		}
		return nil
	})
}

func TestRemoteAgentsLeaveWithTheirNode(t *testing.T) {
	nodes := startNodes(t)
	connect(t, nodes[0], "a1")
	connect(t, nodes[1], "a2")
	clustertest.CheckFor(t, 10*time.Second, 20*time.Millisecond, holderIs(nodes, "a1", "n1"))
	clustertest.CheckFor(t, 10*time.Second, 20*time.Millisecond, holderIs(nodes, "a2", "n2"))
	// Updates on croupier.agents as n3 receives them, by agent.
	var mu sync.Mutex
	seen := map[string]int{}
	sub, err := nodes[2].bus.Conn().Subscribe("croupier.agents", func(m *nats.Msg) {
		mu.Lock()
		seen[updateAgent(m.Data)]++
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nodes[2].bus.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	nodes[0].dir.Close()
	nodes[0].bus.Kill()
	clustertest.CheckFor(t, 15*time.Second, 20*time.Millisecond, func() error {
		for _, n := range nodes[1:] {
			if _, ok := n.reg.Agent("a1"); ok {
				return fmt.Errorf("%s still lists a1 of the dead node", n.bus.ID())
			}
		}
		if _, ok := nodes[2].reg.Agent("a2"); !ok {
			return fmt.Errorf("n3 lost a2")
		}
		return nil
	})
	// The survivors removed a1 themselves; neither publishes a removal of
	// an agent it never held (that was (N−1)² messages per dead agent).
	barrier(t, "croupier.agents", nodes[1:]...)
	clustertest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		mu.Lock()
		defer mu.Unlock()
		if seen[barrierAgent] != 2 {
			return fmt.Errorf("%d of 2 barriers seen", seen[barrierAgent])
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if seen["a1"] != 0 {
		t.Fatalf("%d updates for a1 published after its holder died, want 0", seen["a1"])
	}
}

// TestFleetCommandsAcrossNodes: a fleet command issued on any node reaches
// the agent through the node holding its tunnel (fleet.TunnelDispatcher
// over Dir), errors keep their code, and SyncFleets reaches every agent of
// every node exactly once.
func TestFleetCommandsAcrossNodes(t *testing.T) {
	nodes := startNodes(t)
	connect(t, nodes[0], "a1")
	connect(t, nodes[1], "a2")
	connect(t, nodes[2], "a3")
	clustertest.CheckFor(t, 10*time.Second, 20*time.Millisecond, holderIs(nodes, "a1", "n1"))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for _, n := range nodes {
		disp := &fleet.TunnelDispatcher{Tunnel: n.dir, Broadcast: n.dir.Broadcast}
		res, err := disp.FetchProcessLog(ctx, "a1", &croupierv1.FetchProcessLogCommand{Path: "log.txt"})
		if err != nil || string(res.GetData()) != "n1:log.txt" {
			t.Fatalf("FetchProcessLog on %s: %q, %v; want n1:log.txt", n.bus.ID(), res.GetData(), err)
		}
		// The holder's answer keeps its code (the fake serves only logs).
		err = disp.TerminateProcess(ctx, "a1", &croupierv1.TerminateProcessCommand{ProcessId: "p"})
		if status.Code(err) != codes.Unimplemented {
			t.Fatalf("TerminateProcess on %s: %v; want Unimplemented from the holder", n.bus.ID(), err)
		}
	}
	if nodes[2].dir.Forwarded() != 2 {
		t.Fatalf("n3 forwarded %d calls, want 2", nodes[2].dir.Forwarded())
	}
	disp := &fleet.TunnelDispatcher{Tunnel: nodes[1].dir, Broadcast: nodes[1].dir.Broadcast}
	disp.SyncFleets(ctx, "g", "prod")
	// A second broadcast from the same node is a barrier: each node
	// receives one node's broadcasts in order, so once every agent has the
	// marker, a second copy of SyncFleets would have been counted too.
	nodes[1].dir.Broadcast(ctx, &croupierv1.FetchProcessLogCommand{Path: "marker"})
	agents := map[string]*testNode{"a1": nodes[0], "a2": nodes[1], "a3": nodes[2]}
	clustertest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		for agent, n := range agents {
			if c := n.tun.deliveries(agent, "FetchProcessLogCommand"); c != 1 {
				return fmt.Errorf("agent %s on %s got the marker %d times, want 1", agent, n.bus.ID(), c)
			}
		}
		return nil
	})
	for agent, n := range agents {
		if c := n.tun.deliveries(agent, "SyncFleetsCommand"); c != 1 {
			t.Errorf("agent %s on %s got SyncFleets %d times, want exactly 1", agent, n.bus.ID(), c)
		}
	}
}

// A node asking another for its agents (at start, or when that node
// reappears in membership) gets them alone: one message per agent of the
// asked node, sent to the asker only, none to every node — a join costs
// O(N) messages, not (N−1)².
func TestSyncReachesOnlyTheAsker(t *testing.T) {
	nodes := startNodes(t)
	connect(t, nodes[0], "a1")
	connect(t, nodes[0], "a2")
	connect(t, nodes[1], "b1")
	clustertest.CheckFor(t, 10*time.Second, 20*time.Millisecond, holderIs(nodes, "a1", "n1"))
	clustertest.CheckFor(t, 10*time.Second, 20*time.Millisecond, holderIs(nodes, "a2", "n1"))
	clustertest.CheckFor(t, 10*time.Second, 20*time.Millisecond, holderIs(nodes, "b1", "n2"))
	// n3 learnt the agents from their updates; its own syncs with n1 and
	// n2 may still be due (one not answered while the routes formed is
	// asked again at the next sweep). Each would send it agents in the
	// window counted below: wait until both have answered.
	clustertest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if n := nodes[2].dir.Synced(); n != 2 {
			return fmt.Errorf("n3 synced with %d of 2 nodes", n)
		}
		return nil
	})

	nc := nodes[2].bus.Conn()
	var mu sync.Mutex
	got := map[string]int{}
	for _, subj := range []string{"croupier.agents", "croupier.agents.to.>"} {
		sub, err := nc.Subscribe(subj, func(m *nats.Msg) {
			key := m.Subject
			if updateAgent(m.Data) == barrierAgent {
				key = barrierAgent
			}
			mu.Lock()
			got[key]++
			mu.Unlock()
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := nodes[2].bus.Request(ctx, "croupier.agents.sync.n1", []byte("n3")); err != nil {
		t.Fatal(err)
	}
	// The updates reached this connection before the reply (same route,
	// in order); the subscriptions' callbacks run on their own goroutines.
	// A marker from n1 on both subjects comes after anything n1 sent, so
	// once both are seen, the counts are final: an extra message fails.
	barrier(t, "croupier.agents", nodes[0])
	barrier(t, "croupier.agents.to.n3", nodes[0])
	clustertest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		mu.Lock()
		defer mu.Unlock()
		if got["barrier"] != 2 {
			return fmt.Errorf("%d of 2 barriers seen", got["barrier"])
		}
		return nil
	})
	mu.Lock()
	delete(got, "barrier")
	if want := map[string]int{"croupier.agents.to.n3": 2}; !maps.Equal(got, want) {
		t.Errorf("messages after n3 synced with n1: %v; want %v", got, want)
	}
	mu.Unlock()

	if _, err := nodes[2].bus.Request(ctx, "croupier.agents.sync.n1", []byte("n3.>")); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("sync for a wildcard node id: %v; want InvalidArgument", err)
	}
}

func updateAgentOf(u map[string]any) string {
	a, _ := u["agent"].(map[string]any)
	id, _ := a["id"].(string)
	return id
}

// An instance change of an agent goes to the other nodes as a delta (the
// changed and removed instances only), applied with UpdateInstances; a
// change to the agent's own fields sends the whole registration again.
func TestInstanceChangesTravelAsDeltas(t *testing.T) {
	nodes := startNodes(t)
	connect(t, nodes[0], "a1")
	clustertest.CheckFor(t, 10*time.Second, 20*time.Millisecond, holderIs(nodes, "a1", "n1"))

	var mu sync.Mutex
	var got []map[string]any
	sub, err := nodes[2].bus.Conn().Subscribe("croupier.agents", func(m *nats.Msg) {
		var u map[string]any
		_ = json.Unmarshal(m.Data, &u)
		mu.Lock()
		got = append(got, u)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nodes[2].bus.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	if err := nodes[0].reg.UpdateInstances("a1", []registry.Instance{{ID: "i2", Functions: []string{"f"}}}, []string{"i1"}, nil); err != nil {
		t.Fatal(err)
	}
	instancesAre := func(want ...string) func() error {
		return func() error {
			for _, n := range nodes[1:] {
				a, ok := n.reg.Agent("a1")
				if !ok {
					return fmt.Errorf("%s lost a1", n.bus.ID())
				}
				var ids []string
				for _, in := range a.Instances {
					ids = append(ids, in.ID)
				}
				if !slices.Equal(ids, want) {
					return fmt.Errorf("%s lists a1's instances %v, want %v", n.bus.ID(), ids, want)
				}
			}
			return nil
		}
	}
	clustertest.CheckFor(t, 10*time.Second, 20*time.Millisecond, instancesAre("i2"))
	// After n1's marker, every update n1 published is counted.
	barrier(t, "croupier.agents", nodes[0])
	clustertest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(got) == 0 || updateAgentOf(got[len(got)-1]) != barrierAgent {
			return fmt.Errorf("barrier not seen yet (%d messages)", len(got))
		}
		return nil
	})
	mu.Lock()
	got = got[:len(got)-1]
	if len(got) != 1 {
		mu.Unlock()
		t.Fatalf("%d updates seen for one instance change, want 1: %v", len(got), got)
	}
	u := got[0]
	mu.Unlock()
	if u["delta"] != true || u["upsert"] == nil || fmt.Sprint(u["remove"]) != "[i1]" || u["descs"] != nil {
		t.Fatalf("update sent for an instance change: %v; want a delta upserting i2 and removing i1", u)
	}

	// A change of the agent's own fields: the whole registration.
	if err := nodes[0].reg.Upsert(registry.Agent{ID: "a1", GameID: "g", Env: "prod", Version: "2",
		Instances: []registry.Instance{{ID: "i2", Functions: []string{"f"}}, {ID: "i3", Functions: []string{"f"}}}}); err != nil {
		t.Fatal(err)
	}
	clustertest.CheckFor(t, 10*time.Second, 20*time.Millisecond, instancesAre("i2", "i3"))
	for _, n := range nodes[1:] {
		if a, _ := n.reg.Agent("a1"); a.Version != "2" {
			t.Fatalf("%s has a1 version %q, want 2", n.bus.ID(), a.Version)
		}
	}
}

// A call forwarded to an agent's holder fails UNAVAILABLE as soon as the
// agent is seen on another node, without waiting for the old holder (which
// may be dead and not swept yet: up to the member TTL) or the call's
// deadline.
func TestInFlightCallFailsWhenTheAgentMoves(t *testing.T) {
	nodes := startNodes(t)
	connect(t, nodes[0], "a1")
	clustertest.CheckFor(t, 10*time.Second, 20*time.Millisecond, holderIs(nodes, "a1", "n1"))

	errc := make(chan error, 1)
	go func() {
		// The deadline also bounds the blocked handler on n1 (the test's
		// cleanup waits for it): without the move it is what ends the call.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := nodes[2].dir.Invoke(ctx, "a1", &agentv1.InvokeRequest{InvocationId: "block"})
		errc <- err
	}()
	<-nodes[0].tun.blocked // in flight on n1, which stays up but never answers
	start := time.Now()
	connect(t, nodes[1], "a1") // the agent reconnects to n2
	if err := <-errc; status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "moved away from node n1") {
		t.Fatalf("in-flight call when its agent moved: %v; want UNAVAILABLE naming the move, not the deadline", err)
	}
	t.Logf("failed %v after the agent moved", time.Since(start).Round(time.Millisecond))

	// The call that the caller retries reaches the agent on its new node.
	clustertest.CheckFor(t, 10*time.Second, 20*time.Millisecond, holderIs(nodes, "a1", "n2", 0))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if resp, err := nodes[2].dir.Invoke(ctx, "a1", &agentv1.InvokeRequest{InvocationId: "y"}); err != nil || resp.GetInstanceId() != "n2" {
		t.Fatalf("retry after the move: %v, %v", resp, err)
	}
}
