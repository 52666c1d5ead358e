package rooms_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/auth"
	"github.com/croupier/croupier/internal/cluster/clustertest"
	"github.com/croupier/croupier/internal/ratelimit"
	"github.com/croupier/croupier/internal/rooms"
	"github.com/croupier/croupier/internal/store/storetest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestThrottlesAcrossNodes: two gateway nodes (two rooms services on one
// database, their throttles shared over a real 2-node NATS cluster). Wrong
// room passwords and wrong player passwords spread over both nodes add up:
// once the free attempts are used in total, both nodes refuse, the right
// password too.
func TestThrottlesAcrossNodes(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st := storetest.SQLite(t)
	var nodes [2]*rooms.Service
	for i := range nodes {
		// A wait of a minute after the free attempts: the checks below
		// must not outlast it, however slow the machine.
		svc, err := rooms.New(ctx, rooms.Config{Store: st, Argon2: auth.Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
			LoginThrottle: ratelimit.LoginConfig{Base: time.Minute}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(svc.Close)
		nodes[i] = svc
	}
	a, b := nodes[0], nodes[1]
	buses := clustertest.Start(t, 2, 2*time.Second)
	for i, svc := range nodes {
		if err := svc.ShareThrottles(buses[i].Conn(), buses[i].ID()); err != nil {
			t.Fatal(err)
		}
	}
	// Outcomes published before the other node's interest crossed the
	// route would be dropped (the sharing is best effort, docs/cluster.md).
	clustertest.WaitInterest(t, buses)
	register := func(name string) rooms.Caller {
		r, err := a.Register(ctx, "", &clientv1.RegisterRequest{Username: name, Password: "password-" + name})
		if err != nil {
			t.Fatal(err)
		}
		return rooms.Caller{UserID: r.GetUser().GetId(), Username: name, Source: "198.51.100.7"}
	}
	owner, mallory := register("owner"), register("mallory")
	room, err := a.CreateRoom(ctx, owner, &clientv1.CreateRoomRequest{Name: "locked", Password: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	roomID := room.GetRoom().GetId()
	wantCode := func(what string, err error, code codes.Code, info string) {
		t.Helper()
		if status.Code(err) != code || apierr.Info(err).GetCode() != info {
			t.Fatalf("%s: %v; want %s %s", what, err, code, info)
		}
	}
	// refuses polls until th refuses key on both nodes (the other node's
	// failures arrive over the bus), without an attempt of its own.
	refuses := func(what string, th func(*rooms.Service) *ratelimit.LoginThrottle, user, source string) {
		t.Helper()
		for i, svc := range nodes {
			clustertest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
				at, r := th(svc).Begin(user, source)
				if r != nil {
					return nil
				}
				at.Abandoned()
				return fmt.Errorf("node %d never counted the other node's %s (it still admits them)", i+1, what)
			})
		}
	}

	// 5 free attempts (the default): 3 wrong on node A, 2 on node B.
	for _, svc := range []*rooms.Service{a, a, a, b, b} {
		_, err := svc.JoinRoom(ctx, mallory, &clientv1.JoinRoomRequest{RoomId: roomID, Password: "guess"})
		wantCode("a wrong room password", err, codes.PermissionDenied, apierr.CodeRoomPassword)
	}
	refuses("wrong room passwords", func(s *rooms.Service) *ratelimit.LoginThrottle { _, p := s.Throttles(); return p },
		rooms.RoomPasswordKey(roomID, mallory), "")
	for _, svc := range nodes {
		_, err := svc.JoinRoom(ctx, mallory, &clientv1.JoinRoomRequest{RoomId: roomID, Password: "secret"})
		wantCode("the right room password after 5 wrong ones", err, codes.ResourceExhausted, apierr.CodeRateLimited)
	}

	for _, svc := range []*rooms.Service{a, b, a, b, a} {
		_, err := svc.Login(ctx, "198.51.100.7", &clientv1.LoginRequest{Username: "mallory", Password: "guess"})
		wantCode("a wrong login", err, codes.Unauthenticated, apierr.CodeInvalidCredentials)
	}
	refuses("failed logins", func(s *rooms.Service) *ratelimit.LoginThrottle { l, _ := s.Throttles(); return l }, "mallory", "")
	for _, svc := range nodes {
		_, err := svc.Login(ctx, "203.0.113.9", &clientv1.LoginRequest{Username: "mallory", Password: "password-mallory"})
		wantCode("the right login after 5 wrong ones", err, codes.ResourceExhausted, apierr.CodeRateLimited)
	}
}
