package cluster_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/cluster"
	"github.com/croupier/croupier/internal/cluster/clustertest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func startCluster(t *testing.T, n int) []*cluster.Node {
	return clustertest.Start(t, n, 3*time.Second)
}

func TestSingleNode(t *testing.T) {
	t.Parallel()
	n, err := cluster.Start(t.Context(), cluster.Config{NodeID: "solo"})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if n.ClientURL() != "" {
		t.Fatalf("embedded server listens at %q by default; want no client listener", n.ClientURL())
	}
	if n.RouteURL() != "" {
		t.Fatalf("route URL %q without routes", n.RouteURL())
	}
	m, err := n.Members(t.Context())
	if err != nil || !slices.Equal(m, []string{"solo"}) {
		t.Fatalf("members %v, %v", m, err)
	}
}

func TestRoutedClusterRequests(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3)
	clustertest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		m, err := nodes[2].Members(t.Context())
		if err != nil {
			return err
		}
		if !slices.Equal(m, []string{"n1", "n2", "n3"}) {
			return fmt.Errorf("members %v", m)
		}
		return nil
	})
	if err := nodes[0].Handle("t.echo.n1", "", 4, func(ctx context.Context, data []byte) ([]byte, error) {
		if _, ok := ctx.Deadline(); !ok {
			return nil, status.Error(codes.Internal, "no deadline")
		}
		if string(data) == "fail" {
			return nil, status.Error(codes.NotFound, "no such thing")
		}
		if string(data) == "block" {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return append([]byte("echo:"), data...), nil
	}); err != nil {
		t.Fatal(err)
	}
	// Interest propagates over routes asynchronously, on each route on
	// its own: wait until every node has every other's.
	clustertest.WaitInterest(t, nodes)
	clustertest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		out, err := nodes[2].Request(ctx, "t.echo.n1", []byte("hi"))
		if err != nil {
			return err
		}
		if string(out) != "echo:hi" {
			return fmt.Errorf("reply %q", out)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := nodes[1].Request(ctx, "t.echo.n1", []byte("fail")); status.Code(err) != codes.NotFound {
		t.Fatalf("far error: %v; want NotFound", err)
	}
	short, cancel2 := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel2()
	if _, err := nodes[1].Request(short, "t.echo.n1", []byte("block")); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("blocked call: %v; want DeadlineExceeded", err)
	}
	if _, err := nodes[1].Request(ctx, "t.echo.nobody", nil); status.Code(err) != codes.Unavailable {
		t.Fatalf("call to nobody: %v; want Unavailable", err)
	}

	// A killed node drops out of membership after the TTL.
	nodes[0].Kill()
	clustertest.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		m, err := nodes[1].Members(ctx)
		if err != nil {
			return err
		}
		if slices.Contains(m, "n1") {
			return fmt.Errorf("members %v still list n1", m)
		}
		return nil
	})
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	for _, cfg := range []cluster.Config{
		{NodeID: "bad id"},
		{NodeID: strings.Repeat("x", 65)},
		{NodeID: "a", MemberTTL: time.Millisecond},
		{NodeID: "a", Routes: []string{"nats://127.0.0.1:1"}},
	} {
		if n, err := cluster.Start(t.Context(), cfg); err == nil {
			n.Close()
			t.Errorf("%+v: started", cfg)
		}
	}
}
