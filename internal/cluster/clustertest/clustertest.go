// Package clustertest starts in-process NATS clusters for tests: n
// embedded servers on loopback, routed to each other, JetStream replicated
// three ways (or n, when smaller).
package clustertest

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/cluster"
	"github.com/croupier/croupier/internal/freeport"
	"github.com/nats-io/nats.go"
)

// freePorts picks n loopback addresses that were free a moment ago,
// outside the kernel's ephemeral range (freeport): the routed servers must
// know each other's addresses before they start.
func freePorts(t testing.TB, n int) []string {
	t.Helper()
	ports, err := freeport.Take(n)
	if err != nil {
		t.Fatal(err)
	}
	addrs := make([]string, n)
	for i, p := range ports {
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", p)
	}
	return addrs
}

// Start starts n embedded servers, each routed to all, at once (a
// JetStream cluster elects its meta leader once a quorum has met). They
// share a random bus token: routes authenticate with it.
//
// A cluster that does not come up within startTimeout is closed and started
// once more on fresh ports: on a loaded machine (the whole suite's race
// tests on 2 cores) a JetStream cluster has been seen not to elect its meta
// leader within a minute, and a test about something else should not fail
// for it. A second failure fails the test.
func Start(t testing.TB, n int, ttl time.Duration) []*cluster.Node {
	t.Helper()
	for attempt := 1; ; attempt++ {
		nodes, err := start(n, ttl, freePorts(t, n))
		if err == nil {
			for _, node := range nodes {
				t.Cleanup(node.Close)
			}
			return nodes
		}
		if attempt == 2 {
			t.Fatal(err)
		}
		t.Logf("clustertest: the cluster did not start (%v); starting it again on fresh ports", err)
	}
}

// startTimeout bounds one attempt of Start.
const startTimeout = 45 * time.Second

// start starts n routed nodes on addrs, or closes those that started and
// returns why one did not.
func start(n int, ttl time.Duration, addrs []string) ([]*cluster.Node, error) {
	token := rand.Text()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
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
	var err error
	for i := range errs {
		if errs[i] != nil {
			err = fmt.Errorf("node n%d: %w", i+1, errs[i])
			break
		}
	}
	if err != nil {
		for _, node := range nodes {
			if node != nil {
				node.Close()
			}
		}
		return nil, err
	}
	return nodes, nil
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
