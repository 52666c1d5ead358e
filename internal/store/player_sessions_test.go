package store_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/store/storetest"
)

// activeGSS places and activates session id with maxPlayers on process
// f1-p<i> of a new fleet f1 with n processes.
func activeGSS(t *testing.T, s *store.Store, maxPlayers int) {
	t.Helper()
	ctx := ctxT(t)
	fleetWithProcesses(t, s, "f1", 1)
	g := newGSS("s1")
	g.MaxPlayers = maxPlayers
	_, _, err := s.GameServerSessions().Place(ctx, g, "")
	mustNil(t, err, "place")
	_, err = s.GameServerSessions().Activate(ctx, "s1", "f1-p0", 0)
	mustNil(t, err, "activate")
}

func gseJoins(ids ...string) []store.PlayerJoin {
	out := make([]store.PlayerJoin, len(ids))
	for i, id := range ids {
		out[i] = store.PlayerJoin{PlayerSessionID: "ps-" + id, PlayerID: id, PlayerData: "data-" + id}
	}
	return out
}

func wantRefused(t *testing.T, err error, reason string) {
	t.Helper()
	var r *store.JoinRefusedError
	if !errors.As(err, &r) || r.Reason != reason || !errors.Is(err, store.ErrConflict) {
		t.Fatalf("got %v, want a join refused with %s", err, reason)
	}
}

func TestJoinRefusals(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		fleetWithProcesses(t, s, "f1", 1)
		players := s.PlayerSessions()
		g := newGSS("s1")
		g.MaxPlayers = 2
		_, _, err := s.GameServerSessions().Place(ctx, g, "")
		mustNil(t, err, "place")
		_, err = players.Join(ctx, "s1", gseJoins("a"), t0)
		wantRefused(t, err, store.JoinNotActive)
		_, err = s.GameServerSessions().Activate(ctx, "s1", "f1-p0", 0)
		mustNil(t, err, "activate")

		_, err = players.Join(ctx, "s1", gseJoins("a", "b", "c"), t0)
		wantRefused(t, err, store.JoinFull)
		got, err := players.Join(ctx, "s1", gseJoins("a", "b"), t0.Add(time.Minute))
		mustNil(t, err, "join two")
		if len(got) != 2 || got[0].Status != store.PlayerReserved || got[0].Port != 7000 || got[0].IPAddress != "10.0.0.1" ||
			got[1].PlayerData != "data-b" || !got[0].ReservedUntil.Equal(t0.Add(time.Minute)) {
			t.Fatalf("joined %+v", got)
		}
		_, err = players.Join(ctx, "s1", gseJoins("c"), t0)
		wantRefused(t, err, store.JoinFull)
		g2, err := s.GameServerSessions().Get(ctx, "s1")
		mustNil(t, err, "get")
		if g2.PlayerCount != 2 {
			t.Fatalf("player count %d after refused joins, want 2", g2.PlayerCount)
		}

		_, err = players.Remove(ctx, "s1", "ps-a", "f1-p0")
		mustNil(t, err, "remove")
		_, err = players.Join(ctx, "s1", gseJoins("b"), t0)
		wantErr(t, err, store.ErrConflict, "player already seated")
		_, err = players.Join(ctx, "s1", gseJoins("x", "x"), t0)
		wantErr(t, err, store.ErrInvalidArgument, "duplicate in batch")
		_, err = players.Join(ctx, "missing", gseJoins("x"), t0)
		wantErr(t, err, store.ErrNotFound, "unknown session")
		// A refused batch reserves nothing and leaves the count alone.
		g3, _ := s.GameServerSessions().Get(ctx, "s1")
		if g3.PlayerCount != 1 {
			t.Fatalf("player count %d, want 1", g3.PlayerCount)
		}

		deny := store.PolicyDenyAll
		_, err = s.GameServerSessions().Update(ctx, "s1", store.GSSUpdate{CreationPolicy: &deny})
		mustNil(t, err, "deny all")
		_, err = players.Join(ctx, "s1", gseJoins("z"), t0)
		wantRefused(t, err, store.JoinDenied)
	})
}

func TestAcceptRemove(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		activeGSS(t, s, 4)
		players := s.PlayerSessions()
		_, err := players.Join(ctx, "s1", gseJoins("a", "b"), t0.Add(time.Minute))
		mustNil(t, err, "join")

		_, err = players.Accept(ctx, "s1", "ps-missing", "f1-p0")
		wantErr(t, err, store.ErrNotFound, "accept unknown")
		_, err = players.Accept(ctx, "s-other", "ps-a", "f1-p0")
		wantErr(t, err, store.ErrNotOwner, "accept under another session")
		_, err = players.Accept(ctx, "s1", "ps-a", "f1-other")
		wantErr(t, err, store.ErrNotOwner, "accept from another process")
		ps, err := players.Accept(ctx, "s1", "ps-a", "f1-p0")
		mustNil(t, err, "accept")
		if ps.Status != store.PlayerActive {
			t.Fatalf("accepted %+v", ps)
		}
		_, err = players.Accept(ctx, "s1", "ps-a", "f1-p0")
		wantErr(t, err, store.ErrConflict, "accept twice")

		done, err := players.Remove(ctx, "s1", "ps-a", "f1-p0")
		mustNil(t, err, "remove active")
		if done.Status != store.PlayerCompleted || done.TerminatedAt.IsZero() {
			t.Fatalf("removed %+v", done)
		}
		_, err = players.Remove(ctx, "s1", "ps-a", "f1-p0")
		wantErr(t, err, store.ErrConflict, "remove twice")
		_, err = players.Remove(ctx, "s1", "ps-b", "f1-other")
		wantErr(t, err, store.ErrNotOwner, "remove from another process")
		_, err = players.Remove(ctx, "s1", "ps-b", "")
		mustNil(t, err, "remove reserved without a process check")
		g, _ := s.GameServerSessions().Get(ctx, "s1")
		if g.PlayerCount != 0 {
			t.Fatalf("player count %d, want 0", g.PlayerCount)
		}
	})
}

func TestReservationTimeout(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		activeGSS(t, s, 2)
		players := s.PlayerSessions()
		_, err := players.Join(ctx, "s1", gseJoins("a"), t0.Add(time.Second))
		mustNil(t, err, "join a")
		_, err = players.Join(ctx, "s1", gseJoins("b"), t0.Add(time.Hour))
		mustNil(t, err, "join b")
		_, err = players.Join(ctx, "s1", gseJoins("c"), t0)
		wantRefused(t, err, store.JoinFull)

		expired, err := players.ExpireReservations(ctx, t0.Add(time.Minute), 10)
		mustNil(t, err, "expire")
		if len(expired) != 1 || expired[0].ID != "ps-a" || expired[0].Status != store.PlayerTimedOut {
			t.Fatalf("expired %+v", expired)
		}
		_, err = players.Accept(ctx, "s1", "ps-a", "f1-p0")
		wantErr(t, err, store.ErrConflict, "accept a timed-out reservation")
		// The slot is free again.
		_, err = players.Join(ctx, "s1", gseJoins("c"), t0.Add(time.Hour))
		mustNil(t, err, "join after the timeout freed a slot")
		again, err := players.ExpireReservations(ctx, t0.Add(time.Minute), 10)
		mustNil(t, err, "expire again")
		if len(again) != 0 {
			t.Fatalf("expired twice: %+v", again)
		}
	})
}

// TestJoinConcurrent: more concurrent joins than slots never overfill.
func TestJoinConcurrent(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		const slots, tries = 5, 16
		activeGSS(t, s, slots)
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok, full := 0, 0
		for i := range tries {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.PlayerSessions().Join(ctx, "s1", gseJoins(fmt.Sprint(i)), t0.Add(time.Hour))
				mu.Lock()
				defer mu.Unlock()
				var r *store.JoinRefusedError
				switch {
				case err == nil:
					ok++
				case errors.As(err, &r) && r.Reason == store.JoinFull:
					full++
				default:
					t.Errorf("join %d: %v", i, err)
				}
			}()
		}
		wg.Wait()
		g, err := s.GameServerSessions().Get(ctx, "s1")
		mustNil(t, err, "get")
		if ok != slots || full != tries-slots || g.PlayerCount != slots {
			t.Fatalf("joined %d, refused %d, count %d; want %d, %d, %d", ok, full, g.PlayerCount, slots, tries-slots, slots)
		}
	}, storetest.WithMaxOpenConns(8))
}

func TestPlayerSessionsList(t *testing.T) {
	t.Parallel()
	runClocked(t, func(t *testing.T, s *store.Store, clock *fakeClock) {
		ctx := ctxT(t)
		activeGSS(t, s, 20)
		players := s.PlayerSessions()
		for i := range 7 {
			_, err := players.Join(ctx, "s1", gseJoins(fmt.Sprintf("p%d", i)), t0.Add(time.Hour))
			mustNil(t, err, "join")
			clock.Advance(time.Millisecond)
		}
		_, err := players.Accept(ctx, "s1", "ps-p3", "f1-p0")
		mustNil(t, err, "accept")

		var got []string
		token := ""
		for page := 0; ; page++ {
			if page > 7 {
				t.Fatal("paging does not end")
			}
			list, next, err := players.List(ctx, store.PlayerSessionFilter{GameServerSessionID: "s1", PageSize: 2, PageToken: token})
			mustNil(t, err, "list")
			if len(list) > 2 {
				t.Fatalf("page of %d, want at most 2", len(list))
			}
			for _, p := range list {
				got = append(got, p.PlayerID)
			}
			if next == "" {
				break
			}
			token = next
		}
		if fmt.Sprint(got) != "[p0 p1 p2 p3 p4 p5 p6]" {
			t.Fatalf("paged = %v", got)
		}
		act, _, err := players.List(ctx, store.PlayerSessionFilter{GameServerSessionID: "s1", Status: store.PlayerActive})
		mustNil(t, err, "by status")
		if len(act) != 1 || act[0].PlayerID != "p3" {
			t.Fatalf("active = %+v", act)
		}
		byPlayer, _, err := players.List(ctx, store.PlayerSessionFilter{PlayerID: "p5"})
		mustNil(t, err, "by player")
		byID, _, err := players.List(ctx, store.PlayerSessionFilter{PlayerSessionID: "ps-p5", FleetID: "f1"})
		mustNil(t, err, "by id")
		otherFleet, _, err := players.List(ctx, store.PlayerSessionFilter{PlayerSessionID: "ps-p5", FleetID: "f2"})
		mustNil(t, err, "by id in another fleet")
		if len(byPlayer) != 1 || len(byID) != 1 || len(otherFleet) != 0 {
			t.Fatalf("byPlayer %d, byID %d, other fleet %d", len(byPlayer), len(byID), len(otherFleet))
		}
		_, _, err = players.List(ctx, store.PlayerSessionFilter{})
		wantErr(t, err, store.ErrInvalidArgument, "no selector")
		_, _, err = players.List(ctx, store.PlayerSessionFilter{PlayerID: "x", Status: "GONE"})
		wantErr(t, err, store.ErrInvalidArgument, "bad status")
		_, _, err = players.List(ctx, store.PlayerSessionFilter{PlayerID: "x", PageToken: "%%%"})
		wantErr(t, err, store.ErrInvalidArgument, "bad token")
	})
}
