package auth_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/auth"
	"github.com/croupier/croupier/internal/cluster/clustertest"
	"github.com/croupier/croupier/internal/ratelimit"
	"github.com/croupier/croupier/internal/store/storetest"
	"google.golang.org/grpc/codes"
)

// TestLoginThrottleAcrossNodes: two server nodes (two services on one
// database, their throttles shared over a real 2-node NATS cluster). Wrong
// passwords spread over both nodes add up: once the username has used its
// free attempts in total, both nodes refuse it, the right password too.
func TestLoginThrottleAcrossNodes(t *testing.T) {
	t.Parallel()
	a := newEnv(t, storetest.SQLite(t))
	b, err := auth.New(ctxT(t), auth.Config{Store: a.store, Audit: a.log, Argon2: cheapArgon, Now: a.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	buses := clustertest.Start(t, 2, 2*time.Second)
	for i, svc := range []*auth.Service{a.svc, b} {
		if err := svc.LoginThrottle().Share(buses[i].Conn(), ratelimit.SubjectOperatorLogins, buses[i].ID(), nil); err != nil {
			t.Fatal(err)
		}
	}
	// Outcomes published before the other node's interest crossed the
	// route would be dropped (the sharing is best effort, docs/cluster.md).
	clustertest.WaitInterest(t, buses)
	// 5 free attempts (the default): 3 wrong on node A, 2 on node B.
	for _, svc := range []*auth.Service{a.svc, a.svc, a.svc, b, b} {
		_, err := svc.Login(ctxT(t), "root", "wrong-password")
		wantCode(t, err, codes.Unauthenticated, auth.CodeInvalidCredentials)
	}
	// The condition: each node's throttle refuses root (its own failures
	// plus the other node's, applied from the bus) — polled, bounded.
	for i, th := range []*ratelimit.LoginThrottle{a.svc.LoginThrottle(), b.LoginThrottle()} {
		clustertest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
			at, r := th.Begin("root", "")
			if r != nil {
				return nil
			}
			at.Abandoned()
			return fmt.Errorf("node %d never counted the other node's failures (it still admits root)", i+1)
		})
	}
	for _, svc := range []*auth.Service{a.svc, b} {
		_, err := svc.Login(ctxT(t), "root", "root-password")
		wantCode(t, err, codes.ResourceExhausted, ratelimit.CodeRateLimited, "too many failed logins for this username")
	}
	// After the wait the right password is let through again.
	a.clock.Advance(time.Second)
	if _, err := b.Login(ctxT(t), "root", "root-password"); err != nil {
		t.Fatalf("right password after the wait: %v", err)
	}
}
