package agent

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/tunnel"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
)

// notHeldControl is a ControlService on a node that does not hold the
// agent's tunnel until it has been dialled `held` times: the agent's gRPC
// connection moved to another node, its conn-transport tunnel did not.
type notHeldControl struct {
	*fakeControl
	dials, held *atomic.Int32
}

func (c notHeldControl) notHeld() error {
	if c.dials.Load() < c.held.Load() {
		return apierr.New(codes.FailedPrecondition, apierr.CodeAgentNotConnected, "agent has no open tunnel to this node")
	}
	return nil
}

func (c notHeldControl) RegisterAgent(ctx context.Context, r *croupierv1.RegisterAgentRequest) (*croupierv1.RegisterAgentResponse, error) {
	if err := c.notHeld(); err != nil {
		return nil, err
	}
	return c.fakeControl.RegisterAgent(ctx, r)
}

func (c notHeldControl) UpdateInstances(ctx context.Context, r *croupierv1.UpdateInstancesRequest) (*croupierv1.UpdateInstancesResponse, error) {
	if err := c.notHeld(); err != nil {
		return nil, err
	}
	return c.fakeControl.UpdateInstances(ctx, r)
}

// TestTunnelFollowsTheControlNode: with transport conn, a registration
// refused because the server node does not hold the agent's tunnel makes
// the agent dial its tunnel again (to the gRPC connection's node), and the
// new tunnel's session registers; without it the agent retried the
// registration on the same tunnel for ever.
func TestTunnelFollowsTheControlNode(t *testing.T) {
	t.Parallel()
	a, ctl := newTestAgent(t)
	a.cfg.Transport = "conn"
	var dials, held atomic.Int32
	held.Store(2)
	ctl.heartbeatFn = func() (*croupierv1.HeartbeatResponse, error) {
		return &croupierv1.HeartbeatResponse{Success: true, AssignmentsVersion: 1}, nil
	}
	a.control = notHeldControl{fakeControl: ctl, dials: &dials, held: &held}

	srv := tunnel.NewServer(tunnel.ServerOptions{Logger: quietLog()})
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait(); a.wg.Wait() }) // a.wg: the sessions
	a.client = tunnel.NewConnClient(func(context.Context) (net.Conn, error) {
		dials.Add(1)
		c, s := net.Pipe()
		wg.Go(func() { _ = srv.ServeConn(ctx, s) })
		return c, nil
	}, tunnel.ClientOptions{Name: a.cfg.ID, Handlers: tunnel.NewHandlerRegistry(), Logger: quietLog(),
		OnConnected: a.session, MinBackoff: 10 * time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	wg.Go(func() { _ = a.client.Run(ctx) })

	waitFor(t, 10*time.Second, "a registration on the second tunnel", a.Registered)
	if n := dials.Load(); n != 2 {
		t.Fatalf("%d tunnel dials; want 2 (one reconnect)", n)
	}
	registrations := func() int {
		ctl.mu.Lock()
		defer ctl.mu.Unlock()
		return len(ctl.registers)
	}
	if n := registrations(); n != 1 {
		t.Fatalf("%d registrations accepted; want 1", n)
	}

	// The gRPC connection moves again: an instance update is refused, the
	// tunnel follows, and the third tunnel's session registers the
	// instance in full.
	held.Store(3)
	a.instances.put(inst("gs-1", "inc-1", "player.get"))
	waitFor(t, 10*time.Second, "a registration on the third tunnel", func() bool { return registrations() == 2 })
	if n := dials.Load(); n != 3 {
		t.Fatalf("%d tunnel dials; want 3", n)
	}
	ctl.mu.Lock()
	defer ctl.mu.Unlock()
	if r := ctl.registers[1]; len(r.GetInstances()) != 1 || r.GetInstances()[0].GetInstanceId() != "gs-1" {
		t.Fatalf("registration on the third tunnel: %v; want gs-1", r.GetInstances())
	}
}

// balancedControl is a ControlService behind a load balancer that never
// sends the agent's conn-transport tunnel to the node its gRPC connection
// reaches: a registration is refused until the tunnel shares the gRPC
// connection (the stream transport).
type balancedControl struct {
	*fakeControl
	onStream func() bool
}

func (c balancedControl) RegisterAgent(ctx context.Context, r *croupierv1.RegisterAgentRequest) (*croupierv1.RegisterAgentResponse, error) {
	if !c.onStream() {
		return nil, apierr.New(codes.FailedPrecondition, apierr.CodeAgentNotConnected, "agent has no open tunnel to this node")
	}
	return c.fakeControl.RegisterAgent(ctx, r)
}

// runAutoTunnel gives a an auto tunnel client whose conn transport is a
// pipe to srv (each dial counted in dials) and whose stream goes over cc,
// and runs it until the test ends.
func runAutoTunnel(t *testing.T, a *Agent, srv *tunnel.Server, cc *grpc.ClientConn, dials *atomic.Int32) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait(); a.wg.Wait() })
	a.client = tunnel.NewAutoClient(func(context.Context) (net.Conn, error) {
		dials.Add(1)
		c, s := net.Pipe()
		wg.Go(func() { _ = srv.ServeConn(ctx, s) })
		return c, nil
	}, cc, tunnel.ClientOptions{Name: a.cfg.ID, Handlers: tunnel.NewHandlerRegistry(), Logger: quietLog(),
		OnConnected: a.session, MinBackoff: 10 * time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	wg.Go(func() { _ = a.client.Run(ctx) })
}

// TestAutoTunnelMovesToTheStream: with transport auto, registrations that
// keep reaching a node that does not hold the tunnel (maxNodeMisses in a
// row) move the tunnel to the gRPC stream, and the agent registers there.
func TestAutoTunnelMovesToTheStream(t *testing.T) {
	t.Parallel()
	a, ctl := newTestAgent(t)
	a.cfg.Transport = "auto"
	ctl.heartbeatFn = func() (*croupierv1.HeartbeatResponse, error) {
		return &croupierv1.HeartbeatResponse{Success: true, AssignmentsVersion: 1}, nil
	}
	a.control = balancedControl{fakeControl: ctl, onStream: func() bool { return a.client.OnStream() }}

	srv := tunnel.NewServer(tunnel.ServerOptions{Logger: quietLog()})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(tunnel.GRPCServerOptions()...)
	srv.RegisterGRPC(gs)
	served := make(chan struct{})
	go func() { defer close(served); _ = gs.Serve(lis) }()
	cc, err := grpc.NewClient(lis.Addr().String(), append(tunnel.GRPCDialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Close()
		_ = cc.Close()
		gs.Stop()
		<-served
	})
	var connDials atomic.Int32
	runAutoTunnel(t, a, srv, cc, &connDials)

	waitFor(t, 10*time.Second, "a registration over the stream", a.Registered)
	if !a.client.OnStream() {
		t.Fatal("registered, but the tunnel is not on the stream")
	}
	if n := connDials.Load(); n != maxNodeMisses {
		t.Fatalf("%d conn-transport dials; want %d (one per refused registration)", n, maxNodeMisses)
	}
}

// TestAutoTunnelMissesCountInARow: with transport auto, refusals separated
// by a registration that succeeded do not add up: two, a registration, two
// more keep the tunnel on the conn transport (a cluster whose gRPC
// connection moved twice is not a load balancer).
func TestAutoTunnelMissesCountInARow(t *testing.T) {
	t.Parallel()
	a, ctl := newTestAgent(t)
	a.cfg.Transport = "auto"
	var dials, held atomic.Int32
	held.Store(3) // dials 1 and 2 refused, 3 registers
	ctl.heartbeatFn = func() (*croupierv1.HeartbeatResponse, error) {
		return &croupierv1.HeartbeatResponse{Success: true, AssignmentsVersion: 1}, nil
	}
	a.control = notHeldControl{fakeControl: ctl, dials: &dials, held: &held}

	// The stream's connection goes nowhere: a tunnel that moved there
	// would never register, and the test would fail waiting.
	cc, err := grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	srv := tunnel.NewServer(tunnel.ServerOptions{Logger: quietLog()})
	t.Cleanup(func() { srv.Close(); _ = cc.Close() })
	runAutoTunnel(t, a, srv, cc, &dials)
	registrations := func() int {
		ctl.mu.Lock()
		defer ctl.mu.Unlock()
		return len(ctl.registers)
	}
	waitFor(t, 10*time.Second, "a registration on the third tunnel", func() bool { return registrations() == 1 })

	// Two more refusals (an instance update on the third tunnel, the
	// registration on the fourth), then the fifth tunnel registers.
	held.Store(5)
	a.instances.put(inst("gs-1", "inc-1", "player.get"))
	waitFor(t, 10*time.Second, "a registration on the fifth tunnel", func() bool { return registrations() == 2 })
	if n := dials.Load(); n != 5 {
		t.Fatalf("%d tunnel dials; want 5", n)
	}
	if a.client.OnStream() {
		t.Fatal("the tunnel moved to the gRPC stream after refusals that were not in a row")
	}
}
