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
	"google.golang.org/grpc/codes"
)

// notHeldControl is a ControlService on a node that does not hold the
// agent's tunnel until the tunnel has been dialled again: the agent's gRPC
// connection moved to another node, its conn-transport tunnel did not.
type notHeldControl struct {
	*fakeControl
	dials *atomic.Int32
}

func (c notHeldControl) RegisterAgent(ctx context.Context, r *croupierv1.RegisterAgentRequest) (*croupierv1.RegisterAgentResponse, error) {
	if c.dials.Load() < 2 {
		return nil, apierr.New(codes.FailedPrecondition, apierr.CodeAgentNotConnected, "agent "+r.GetAgentId()+" has no open tunnel")
	}
	return c.fakeControl.RegisterAgent(ctx, r)
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
	var dials atomic.Int32
	a.control = notHeldControl{fakeControl: ctl, dials: &dials}

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
	ctl.mu.Lock()
	defer ctl.mu.Unlock()
	if len(ctl.registers) != 1 {
		t.Fatalf("%d registrations accepted; want 1", len(ctl.registers))
	}
}
