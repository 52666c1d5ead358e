package server

import (
	"testing"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// TestFleetScopeTrustsNoGameBesideAnID: fleetScope takes a request's own
// game_id (or its Fleet's) before the ids it resolves from the store, so a
// FleetService request that carried both could name a fleet, session or
// placement of one game and be checked against another. None does; this fails when a
// request message gains that pair: resolve its scope from the id first,
// as UpdateFleet's is, and make this test know it.
func TestFleetScopeTrustsNoGameBesideAnID(t *testing.T) {
	ids := []protoreflect.Name{"fleet_id", "game_server_session_id", "placement_id"}
	sd := croupierv1.File_croupier_v1_fleet_proto.Services().ByName("FleetService")
	if sd == nil {
		t.Fatal("no FleetService in fleet.proto")
	}
	for i := range sd.Methods().Len() {
		m := sd.Methods().Get(i)
		in := m.Input()
		for j := range in.Fields().Len() {
			f := in.Fields().Get(j)
			// A Fleet carries game_id and fleet_id both: fleetScope reads
			// UpdateFleet's from the stored fleet, and CreateFleet's names
			// a fleet that does not exist yet.
			if f.Message() != nil && f.Message().FullName() == "croupier.v1.Fleet" &&
				m.Name() != "CreateFleet" && m.Name() != "UpdateFleet" {
				t.Errorf("%s: %s carries a Fleet (%s); fleetScope would check its game_id, not the stored fleet's", m.FullName(), in.Name(), f.Name())
			}
		}
		if in.Fields().ByName("game_id") == nil {
			continue
		}
		for _, id := range ids {
			if in.Fields().ByName(id) != nil {
				t.Errorf("%s: %s carries game_id and %s; fleetScope would check the request's game, not the stored one's", m.FullName(), in.Name(), id)
			}
		}
	}
}
