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

func newGSS(id string) *store.GameServerSession {
	return &store.GameServerSession{ID: id, FleetID: "f1", GameID: "g", Env: "prod", MaxPlayers: 4, Name: "n-" + id,
		Properties:  []store.Property{{Key: "mode", Value: "brawl"}, {Key: "a", Value: metaStrings[0]}},
		SessionData: "data", ActivationDeadline: t0.Add(time.Minute)}
}

func TestPlaceAndActivate(t *testing.T) {
	t.Parallel()
	runClocked(t, func(t *testing.T, s *store.Store, clock *fakeClock) {
		ctx := ctxT(t)
		fleetWithProcesses(t, s, "f1", 2)
		sessions := s.GameServerSessions()

		first, existing, err := sessions.Place(ctx, newGSS("s1"), "")
		mustNil(t, err, "place s1")
		if existing || first.Status != store.GSSActivating || first.ProcessID != "f1-p0" || first.Port != 7000 ||
			first.AgentID != "agent-1" || first.IPAddress != "10.0.0.1" || first.CreationPolicy != store.PolicyAcceptAll ||
			len(first.Properties) != 2 || first.Properties[1].Value != metaStrings[0] || !first.CreatedAt.Equal(clock.Now()) {
			t.Fatalf("placed %+v", first)
		}
		p, err := s.Processes().Get(ctx, "f1-p0")
		mustNil(t, err, "get process")
		if p.GameServerSessionID != "s1" {
			t.Fatalf("process not claimed: %+v", p)
		}

		dup := newGSS("s-other")
		_, _, err = sessions.Place(ctx, newGSS("s1"), "")
		wantErr(t, err, store.ErrConflict, "taken id")

		// Idempotency token: the second request gets the first session.
		dup.IdempotencyToken = "tok"
		a, existing, err := sessions.Place(ctx, dup, "")
		mustNil(t, err, "place with token")
		if existing || a.ProcessID != "f1-p1" {
			t.Fatalf("first token use: existing=%v %+v", existing, a)
		}
		again := newGSS("s-third")
		again.IdempotencyToken = "tok"
		b, existing, err := sessions.Place(ctx, again, "")
		mustNil(t, err, "repeat token")
		if !existing || b.ID != a.ID {
			t.Fatalf("token reuse created %+v (existing=%v), want %s", b, existing, a.ID)
		}
		_, _, err = sessions.Place(ctx, newGSS("s4"), "")
		wantErr(t, err, store.ErrNoCapacity, "no free process")

		_, err = sessions.Activate(ctx, "s1", "f1-p1", 0)
		wantErr(t, err, store.ErrNotOwner, "activate from another process")
		act, err := sessions.Activate(ctx, "s1", "f1-p0", 8)
		mustNil(t, err, "activate")
		if act.Status != store.GSSActive || act.MaxPlayers != 8 || act.ActivatedAt.IsZero() {
			t.Fatalf("activated %+v", act)
		}
		_, err = sessions.Activate(ctx, "s1", "f1-p0", 0)
		wantErr(t, err, store.ErrConflict, "activate twice")
		_, err = sessions.Activate(ctx, "missing", "f1-p0", 0)
		wantErr(t, err, store.ErrNotFound, "activate missing")
	})
}

func TestPlaceSkipsUnavailableProcesses(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		fleetWithProcesses(t, s, "f1", 4)
		procs := s.Processes()
		p0, err := procs.Get(ctx, "f1-p0")
		mustNil(t, err, "get")
		p0.Healthy = false
		_, err = procs.Upsert(ctx, p0)
		mustNil(t, err, "unhealthy")
		_, err = procs.MarkTerminating(ctx, "f1-p1", "")
		mustNil(t, err, "terminating")
		_, err = procs.Upsert(ctx, &store.Process{ID: "f1-launching", AgentID: "agent-1", FleetID: "f1", GameID: "g",
			Env: "prod", Status: store.ProcessLaunching, Healthy: true, ReadyAt: t0.Add(-time.Hour)})
		mustNil(t, err, "launching")
		_, err = procs.MarkEnded(ctx, "f1-p2", store.ProcessCrashed, "")
		mustNil(t, err, "crashed")
		g, _, err := s.GameServerSessions().Place(ctx, newGSS("s1"), "")
		mustNil(t, err, "place")
		if g.ProcessID != "f1-p3" {
			t.Fatalf("placed on %s, want the only available process f1-p3", g.ProcessID)
		}
	})
}

// TestPlaceConcurrent: more concurrent placements than processes; each
// process hosts exactly one session and the rest get ErrNoCapacity.
func TestPlaceConcurrent(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		const procs, tries = 5, 12
		fleetWithProcesses(t, s, "f1", procs)
		var wg sync.WaitGroup
		var mu sync.Mutex
		hosts := map[string]string{}
		noCap := 0
		for i := range tries {
			wg.Add(1)
			go func() {
				defer wg.Done()
				g, _, err := s.GameServerSessions().Place(ctx, newGSS(fmt.Sprintf("s%d", i)), "")
				mu.Lock()
				defer mu.Unlock()
				switch {
				case errors.Is(err, store.ErrNoCapacity):
					noCap++
				case err != nil:
					t.Errorf("place %d: %v", i, err)
				default:
					if prev, dup := hosts[g.ProcessID]; dup {
						t.Errorf("process %s hosts %s and %s", g.ProcessID, prev, g.ID)
					}
					hosts[g.ProcessID] = g.ID
				}
			}()
		}
		wg.Wait()
		if len(hosts) != procs || noCap != tries-procs {
			t.Fatalf("placed %d, refused %d; want %d and %d", len(hosts), noCap, procs, tries-procs)
		}
	}, storetest.WithMaxOpenConns(8))
}

func TestSessionEndFreesProcessAndPlayers(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		fleetWithProcesses(t, s, "f1", 1)
		sessions := s.GameServerSessions()
		_, _, err := sessions.Place(ctx, newGSS("s1"), "")
		mustNil(t, err, "place")
		_, err = sessions.Activate(ctx, "s1", "f1-p0", 0)
		mustNil(t, err, "activate")
		ps, err := s.PlayerSessions().Join(ctx, "s1", []store.PlayerJoin{{PlayerSessionID: "ps1", PlayerID: "p1"}, {PlayerSessionID: "ps2", PlayerID: "p2"}}, t0.Add(time.Minute))
		mustNil(t, err, "join")
		_, err = s.PlayerSessions().Accept(ctx, "s1", ps[0].ID, "f1-p0")
		mustNil(t, err, "accept")

		term, err := sessions.SetStatus(ctx, "s1", []string{store.GSSActive}, store.GSSTerminating, "TERMINATED_BY_OPERATOR")
		mustNil(t, err, "terminating")
		if term.Status != store.GSSTerminating {
			t.Fatalf("SetStatus = %+v", term)
		}
		_, err = sessions.SetStatus(ctx, "s1", []string{store.GSSActive}, store.GSSTerminating, "")
		wantErr(t, err, store.ErrConflict, "SetStatus from the wrong status")
		_, err = sessions.SetStatus(ctx, "s1", nil, store.GSSTerminated, "")
		wantErr(t, err, store.ErrInvalidArgument, "SetStatus to an end status")

		g, applied, err := sessions.End(ctx, "s1", []string{store.GSSActive, store.GSSTerminating}, store.GSSTerminated, "TERMINATED_BY_PROCESS")
		mustNil(t, err, "end")
		if !applied || g.Status != store.GSSTerminated || g.StatusReason != "TERMINATED_BY_PROCESS" || g.PlayerCount != 0 || g.TerminatedAt.IsZero() {
			t.Fatalf("End = %+v applied=%v", g, applied)
		}
		for _, id := range []string{"ps1", "ps2"} {
			p, err := s.PlayerSessions().Get(ctx, id)
			mustNil(t, err, "get player session")
			if p.Status != store.PlayerCompleted {
				t.Fatalf("player session %s is %s after the session ended", id, p.Status)
			}
		}
		p, err := s.Processes().Get(ctx, "f1-p0")
		mustNil(t, err, "get process")
		if p.GameServerSessionID != "" {
			t.Fatalf("process not freed: %+v", p)
		}
		_, applied, err = sessions.End(ctx, "s1", []string{store.GSSActive}, store.GSSError, "")
		mustNil(t, err, "end twice")
		if applied {
			t.Fatal("End applied to an ended session")
		}
		// The freed process hosts the next session.
		next, _, err := sessions.Place(ctx, newGSS("s2"), "")
		mustNil(t, err, "place on the freed process")
		if next.ProcessID != "f1-p0" {
			t.Fatalf("next session on %s", next.ProcessID)
		}
		live, err := sessions.LiveOnProcess(ctx, "f1-p0")
		mustNil(t, err, "live on process")
		if live.ID != "s2" {
			t.Fatalf("LiveOnProcess = %s", live.ID)
		}
	})
}

func TestSessionUpdate(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		fleetWithProcesses(t, s, "f1", 1)
		sessions := s.GameServerSessions()
		_, _, err := sessions.Place(ctx, newGSS("s1"), "")
		mustNil(t, err, "place")
		_, err = sessions.Activate(ctx, "s1", "f1-p0", 0)
		mustNil(t, err, "activate")
		_, err = s.PlayerSessions().Join(ctx, "s1", []store.PlayerJoin{{PlayerSessionID: "a", PlayerID: "1"}, {PlayerSessionID: "b", PlayerID: "2"}}, t0)
		mustNil(t, err, "join")
		name, one, three, deny := "new", 1, 3, store.PolicyDenyAll
		_, err = sessions.Update(ctx, "s1", store.GSSUpdate{MaxPlayers: &one})
		wantErr(t, err, store.ErrConflict, "max players below the player count")
		g, err := sessions.Update(ctx, "s1", store.GSSUpdate{Name: &name, MaxPlayers: &three, CreationPolicy: &deny})
		mustNil(t, err, "update")
		if g.Name != "new" || g.MaxPlayers != 3 || g.CreationPolicy != store.PolicyDenyAll {
			t.Fatalf("updated %+v", g)
		}
		_, err = sessions.Update(ctx, "s1", store.GSSUpdate{Name: &name, ProcessID: "other"})
		wantErr(t, err, store.ErrNotOwner, "update from another process")
		bad := "SOME"
		_, err = sessions.Update(ctx, "s1", store.GSSUpdate{CreationPolicy: &bad})
		wantErr(t, err, store.ErrInvalidArgument, "bad policy")
		_, _, err = sessions.End(ctx, "s1", []string{store.GSSActive}, store.GSSTerminated, "")
		mustNil(t, err, "end")
		_, err = sessions.Update(ctx, "s1", store.GSSUpdate{Name: &name})
		wantErr(t, err, store.ErrConflict, "update an ended session")
		_, err = sessions.Update(ctx, "missing", store.GSSUpdate{Name: &name})
		wantErr(t, err, store.ErrNotFound, "update missing")
	})
}

func TestSessionListAndExpiry(t *testing.T) {
	t.Parallel()
	runClocked(t, func(t *testing.T, s *store.Store, clock *fakeClock) {
		ctx := ctxT(t)
		const n = 7
		fleetWithProcesses(t, s, "f1", n)
		sessions := s.GameServerSessions()
		for i := range n {
			g := newGSS(fmt.Sprintf("s%d", i))
			g.ActivationDeadline = t0.Add(time.Duration(i) * time.Second)
			_, _, err := sessions.Place(ctx, g, "")
			mustNil(t, err, "place")
			clock.Advance(time.Millisecond)
		}
		_, err := sessions.Activate(ctx, "s6", "f1-p6", 0)
		mustNil(t, err, "activate s6")

		var got []string
		token := ""
		for page := 0; ; page++ {
			if page > n {
				t.Fatal("paging does not end")
			}
			list, next, err := sessions.List(ctx, store.GSSFilter{FleetID: "f1", PageSize: 3, PageToken: token})
			mustNil(t, err, "list")
			for _, g := range list {
				got = append(got, g.ID)
			}
			if next == "" {
				break
			}
			token = next
		}
		want := []string{"s6", "s5", "s4", "s3", "s2", "s1", "s0"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("paged list = %v, want %v (newest first)", got, want)
		}
		active, _, err := sessions.List(ctx, store.GSSFilter{FleetID: "f1", Statuses: []string{store.GSSActive}})
		mustNil(t, err, "list active")
		if len(active) != 1 || active[0].ID != "s6" {
			t.Fatalf("active = %+v", active)
		}
		_, _, err = sessions.List(ctx, store.GSSFilter{FleetID: "f1", PageToken: "garbage"})
		wantErr(t, err, store.ErrInvalidArgument, "bad token")
		_, _, err = sessions.List(ctx, store.GSSFilter{FleetID: "f1", Statuses: []string{"NOPE"}})
		wantErr(t, err, store.ErrInvalidArgument, "bad status")

		live, err := sessions.ListLive(ctx, "f1", 0)
		mustNil(t, err, "list live")
		if len(live) != n {
			t.Fatalf("live = %d, want %d", len(live), n)
		}
		// Deadlines t0+0s .. t0+6s; at t0+2s sessions s0..s2 have expired
		// (s6 is ACTIVE anyway).
		expired, err := sessions.ExpiredActivations(ctx, t0.Add(2*time.Second), 100)
		mustNil(t, err, "expired")
		if len(expired) != 3 || expired[0].ID != "s0" || expired[2].ID != "s2" {
			t.Fatalf("expired = %+v", expired)
		}
	})
}

func TestPlacements(t *testing.T) {
	t.Parallel()
	runClocked(t, func(t *testing.T, s *store.Store, clock *fakeClock) {
		ctx := ctxT(t)
		fleetWithProcesses(t, s, "f1", 1)
		pl := s.Placements()
		newPl := func(id string) *store.Placement {
			return &store.Placement{ID: id, FleetID: "f1", GameID: "g", Env: "prod", MaxPlayers: 2, TimeoutSeconds: 10,
				Properties: []store.Property{{Key: "k", Value: "v"}}}
		}
		p1, existing, err := pl.Create(ctx, newPl("pl1"), 2)
		mustNil(t, err, "create")
		if existing || p1.Status != store.PlacementPending || !p1.Deadline.Equal(t0.Add(10*time.Second)) {
			t.Fatalf("created %+v", p1)
		}
		again, existing, err := pl.Create(ctx, newPl("pl1"), 2)
		mustNil(t, err, "repeat")
		if !existing || again.ID != "pl1" {
			t.Fatalf("repeat = %+v existing=%v", again, existing)
		}
		clock.Advance(time.Millisecond)
		_, _, err = pl.Create(ctx, newPl("pl2"), 2)
		mustNil(t, err, "create pl2")
		_, _, err = pl.Create(ctx, newPl("pl3"), 2)
		wantErr(t, err, store.ErrConflict, "queue full")
		bad := newPl("pl4")
		bad.FleetID = "nope"
		_, _, err = pl.Create(ctx, bad, 0)
		wantErr(t, err, store.ErrNotFound, "unknown fleet")

		pending, err := pl.Pending(ctx, "f1", 10)
		mustNil(t, err, "pending")
		if len(pending) != 2 || pending[0].ID != "pl1" {
			t.Fatalf("pending = %+v", pending)
		}
		g, _, err := s.GameServerSessions().Place(ctx, newGSS("s1"), "pl1")
		mustNil(t, err, "fulfil pl1")
		got, err := pl.Get(ctx, "pl1")
		mustNil(t, err, "get")
		if got.Status != store.PlacementFulfilled || got.SessionID != g.ID {
			t.Fatalf("fulfilled = %+v", got)
		}
		// A placement that is no longer PENDING cannot be fulfilled; the
		// session is not created and the process stays free.
		_, applied, err := pl.End(ctx, "pl2", store.PlacementCancelled)
		mustNil(t, err, "cancel")
		if !applied {
			t.Fatal("cancel did not apply")
		}
		_, _, err = s.GameServerSessions().End(ctx, "s1", []string{store.GSSActivating}, store.GSSError, "")
		mustNil(t, err, "end s1")
		_, _, err = s.GameServerSessions().Place(ctx, newGSS("s2"), "pl2")
		wantErr(t, err, store.ErrConflict, "fulfil a cancelled placement")
		if _, err := s.GameServerSessions().Get(ctx, "s2"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("session of a refused fulfilment exists: %v", err)
		}
		cur, applied, err := pl.End(ctx, "pl1", store.PlacementTimedOut)
		mustNil(t, err, "end fulfilled")
		if applied || cur.Status != store.PlacementFulfilled {
			t.Fatalf("End changed a fulfilled placement: %+v", cur)
		}
		_, _, err = pl.End(ctx, "pl1", store.PlacementPending)
		wantErr(t, err, store.ErrInvalidArgument, "end as pending")
	})
}
