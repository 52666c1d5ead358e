package auth_test

import (
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
		if err := svc.LoginThrottle().Share(buses[i].Conn(), buses[i].ID(), nil); err != nil {
			t.Fatal(err)
		}
	}
	// 5 free attempts (the default): 3 wrong on node A, 2 on node B.
	for _, svc := range []*auth.Service{a.svc, a.svc, a.svc, b, b} {
		_, err := svc.Login(ctxT(t), "root", "wrong-password")
		wantCode(t, err, codes.Unauthenticated, auth.CodeInvalidCredentials)
	}
	refused := func(th *ratelimit.LoginThrottle) func() bool {
		return func() bool {
			at, r := th.Begin("root", "")
			if r != nil {
				return true
			}
			at.Abandoned()
			return false
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, th := range []*ratelimit.LoginThrottle{a.svc.LoginThrottle(), b.LoginThrottle()} {
		for !refused(th)() {
			if time.Now().After(deadline) {
				t.Fatal("a node never counted the other node's failures")
			}
			time.Sleep(10 * time.Millisecond)
		}
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
