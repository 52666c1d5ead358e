package store_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/store/storetest"
)

func newFleetDef(id string) *croupierv1.Fleet {
	return &croupierv1.Fleet{
		FleetId: id, GameId: "g", Env: "prod", Name: "fleet " + id,
		RuntimeConfiguration: &croupierv1.RuntimeConfiguration{ServerProcesses: []*croupierv1.ServerProcess{
			{LaunchPath: "/bin/game", Parameters: []string{"-x"}, ConcurrentExecutions: 2, Environment: map[string]string{"A": "1"}},
		}},
		ProtectionPolicy: "NoProtection", AgentSelector: map[string]string{"zone": "a"},
	}
}

// fleetWithProcesses declares scope g/prod, creates fleet id and n ACTIVE,
// healthy processes "<id>-p<i>" on agent "agent-1", ready one second apart.
func fleetWithProcesses(t *testing.T, s *store.Store, id string, n int) {
	t.Helper()
	ctx := ctxT(t)
	declare(t, s, "g", "prod")
	mustNil(t, s.Fleets().Create(ctx, newFleetDef(id)), "create fleet")
	for i := range n {
		_, err := s.Processes().Upsert(ctx, &store.Process{
			ID: fmt.Sprintf("%s-p%d", id, i), AgentID: "agent-1", FleetID: id, GameID: "g", Env: "prod",
			PID: 100 + i, Status: store.ProcessActive, Healthy: true, IPAddress: "10.0.0.1", ClientPort: 7000 + i,
			GRPCPort: 8000 + i, ReadyAt: t0.Add(time.Duration(i) * time.Second),
		})
		mustNil(t, err, "upsert process")
	}
}

func TestFleetsCRUD(t *testing.T) {
	t.Parallel()
	runClocked(t, func(t *testing.T, s *store.Store, clock *fakeClock) {
		ctx := ctxT(t)
		fleets := s.Fleets()
		wantErr(t, fleets.Create(ctx, newFleetDef("f1")), store.ErrNotFound, "create in undeclared scope")
		declare(t, s, "g", "prod")
		f := newFleetDef("f1")
		mustNil(t, fleets.Create(ctx, f), "create")
		if f.GetVersion() != 1 || f.GetCreationTimeMs() != clock.Now().UnixMilli() {
			t.Fatalf("create did not write back version/time: %v", f)
		}
		wantErr(t, fleets.Create(ctx, newFleetDef("f1")), store.ErrConflict, "duplicate")
		got, err := fleets.Get(ctx, "f1")
		mustNil(t, err, "get")
		if !proto.Equal(got, f) {
			t.Fatalf("Get = %v, want %v", got, f)
		}
		_, err = fleets.Get(ctx, "nope")
		wantErr(t, err, store.ErrNotFound, "get missing")

		mustNil(t, fleets.Create(ctx, newFleetDef("f0")), "create f0")
		declare(t, s, "g", "dev")
		other := newFleetDef("f2")
		other.Env = "dev"
		mustNil(t, fleets.Create(ctx, other), "create f2")
		list, err := fleets.List(ctx, "g", "prod")
		mustNil(t, err, "list")
		if len(list) != 2 || list[0].GetFleetId() != "f0" || list[1].GetFleetId() != "f1" {
			t.Fatalf("List(g, prod) = %v", list)
		}
		all, err := fleets.List(ctx, "", "")
		mustNil(t, err, "list all")
		if len(all) != 3 {
			t.Fatalf("List all = %d fleets, want 3", len(all))
		}

		clock.Advance(time.Second)
		upd := newFleetDef("f1")
		upd.Name, upd.GameId, upd.Env, upd.Version = "renamed", "other", "other", 1
		mustNil(t, fleets.Update(ctx, upd), "update")
		if upd.GetVersion() != 2 || upd.GetGameId() != "g" || upd.GetEnv() != "prod" || upd.GetCreationTimeMs() != t0.UnixMilli() {
			t.Fatalf("update must keep scope and creation time and bump version: %v", upd)
		}
		stale := newFleetDef("f1")
		stale.Version = 1
		wantErr(t, fleets.Update(ctx, stale), store.ErrConflict, "stale version")
		stale.Version = 0 // unconditional
		mustNil(t, fleets.Update(ctx, stale), "unconditional update")
		wantErr(t, fleets.Update(ctx, newFleetDef("nope")), store.ErrNotFound, "update missing")

		mustNil(t, fleets.Delete(ctx, "f1"), "delete")
		wantErr(t, fleets.Delete(ctx, "f1"), store.ErrNotFound, "delete twice")
	})
}

func TestFleetDeleteCascades(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		fleetWithProcesses(t, s, "f1", 1)
		g := &store.GameServerSession{ID: "s1", FleetID: "f1", GameID: "g", Env: "prod", MaxPlayers: 2}
		_, _, err := s.GameServerSessions().Place(ctx, g, "")
		mustNil(t, err, "place")
		mustNil(t, s.Fleets().Delete(ctx, "f1"), "delete fleet")
		_, err = s.GameServerSessions().Get(ctx, "s1")
		if !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("session survived its fleet: %v", err)
		}
	})
}

// runClocked is storetest.Run with a fresh fake clock at t0 per database, so
// the subtests do not see each other's clock advances.
func runClocked(t *testing.T, fn func(t *testing.T, s *store.Store, clock *fakeClock), opts ...storetest.Option) {
	t.Helper()
	for _, driver := range []string{store.DriverSQLite, store.DriverPostgres} {
		t.Run(driver, func(t *testing.T) {
			clock := newFakeClock(t0)
			fn(t, storetest.Open(t, driver, append(opts, storetest.WithClock(clock.Now))...), clock)
		})
	}
}
