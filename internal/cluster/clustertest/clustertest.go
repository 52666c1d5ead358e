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
	"github.com/nats-io/nats.go"
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

// WaitInterest returns once every subscription made on a node's connection
// before the call is known to every other node. A server tells its routes
// about new interest asynchronously, and a message published where the
// interest has not arrived yet is not forwarded (core NATS is at most
// once). Route interest of one account travels in order on one route
// connection, so a probe subscribed after those subscriptions, on the same
// connection, is answered across the route only once they have arrived.
func WaitInterest(t testing.TB, nodes []*cluster.Node) {
	t.Helper()
	for j, to := range nodes {
		subject := "clustertest.probe." + rand.Text()
		sub, err := to.Conn().Subscribe(subject, func(m *nats.Msg) { _ = m.Respond(nil) })
		if err != nil {
			t.Fatal(err)
		}
		if err := to.Conn().Flush(); err != nil {
			t.Fatal(err)
		}
		for i, from := range nodes {
			if i == j {
				continue
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				_, err := from.Conn().Request(subject, nil, 100*time.Millisecond)
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("node %s: no interest from node %s after 30 s: %v", from.ID(), to.ID(), err)
				}
				time.Sleep(10 * time.Millisecond) // "no responders" comes back at once
			}
		}
		_ = sub.Unsubscribe()
	}
}

// CheckFor polls fn every interval until it returns nil, failing the test
// with fn's last error after timeout (nats-server's helper of that name).
func CheckFor(t testing.TB, timeout, interval time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(interval)
	}
}
