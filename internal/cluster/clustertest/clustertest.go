// Package clustertest starts in-process NATS clusters for tests: n
// embedded servers on loopback, routed to each other, JetStream replicated
// three ways (or n, when smaller).
package clustertest

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/cluster"
)

// freePorts reserves n loopback ports by listening and closing (the
// routed servers must know each other's addresses before they start).
func freePorts(t testing.TB, n int) []string {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs[i] = l.Addr().String()
		defer l.Close()
	}
	return addrs
}

// Start starts n embedded servers, each routed to all, at once (a
// JetStream cluster elects its meta leader once a quorum has met). They
// share a random bus token: routes authenticate with it.
func Start(t testing.TB, n int, ttl time.Duration) []*cluster.Node {
	t.Helper()
	token := rand.Text()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	addrs := freePorts(t, n)
	routes := make([]string, n)
	for i, a := range addrs {
		routes[i] = "nats://" + a
	}
	nodes := make([]*cluster.Node, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			nodes[i], errs[i] = cluster.Start(ctx, cluster.Config{
				NodeID: fmt.Sprintf("n%d", i+1), ClusterName: "test", ClusterListen: addrs[i],
				Routes: routes, Replicas: min(n, 3), MemberTTL: ttl, Token: token,
			})
		})
	}
	wg.Wait()
	for i, node := range nodes {
		if node != nil {
			t.Cleanup(node.Close)
		}
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
	}
	return nodes
}
