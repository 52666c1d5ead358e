package agent

import (
	"fmt"
	"testing"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
)

func inst(id, inc string, fns ...string) *instance {
	in := &instance{id: id, incarnation: inc, labels: map[string]string{"id": id}}
	for _, f := range fns {
		in.functions = append(in.functions, &croupierv1.FunctionDescriptor{Id: f, Name: f + "@" + id})
	}
	return in
}

// changed reports whether a "registration is stale" signal is pending, and
// consumes it.
func changed(t *instances) bool {
	select {
	case <-t.changed:
		return true
	default:
		return false
	}
}

func TestInstancesPick(t *testing.T) {
	t.Parallel()
	tab := newInstances()
	if id, ok := tab.pick("", "player.get"); ok {
		t.Fatalf("pick on an empty table = %q", id)
	}
	tab.put(inst("gs-3", "i3", "player.get", "mail.send"))
	tab.put(inst("gs-1", "i1", "mail.send"))
	tab.put(inst("gs-2", "i2", "player.get"))
	tests := []struct {
		want, fn string
		id       string
		ok       bool
	}{
		{"", "player.get", "gs-2", true}, // lowest id serving it
		{"", "mail.send", "gs-1", true},
		{"", "nope", "", false},
		{"gs-3", "player.get", "gs-3", true},
		{"gs-1", "player.get", "gs-1", false}, // named, but does not serve it
		{"gs-9", "player.get", "gs-9", false}, // not connected
	}
	for _, tt := range tests {
		id, ok := tab.pick(tt.want, tt.fn)
		if ok != tt.ok || (ok && id != tt.id) {
			t.Errorf("pick(%q, %q) = %q, %v; want %q, %v", tt.want, tt.fn, id, ok, tt.id, tt.ok)
		}
	}
}

func TestInstancesSnapshot(t *testing.T) {
	t.Parallel()
	tab := newInstances()
	tab.put(inst("gs-2", "i2", "player.get", "player.ban"))
	tab.put(inst("gs-1", "i1", "player.get"))
	if !changed(tab) || changed(tab) {
		t.Fatal("puts must leave exactly one coalesced change signal")
	}
	fns, descs, infos, departed := tab.snapshot()
	// Functions once each, from the first instance (by id) that has them.
	if fmt.Sprint(fns) != "[player.get player.ban]" || len(descs) != 2 || descs[0].GetName() != "player.get@gs-1" || descs[1].GetId() != "player.ban" {
		t.Fatalf("fns %v descs %v", fns, descs)
	}
	if len(infos) != 2 || infos[0].GetInstanceId() != "gs-1" || infos[0].GetIncarnation() != "i1" || fmt.Sprint(infos[1].GetFunctions()) != "[player.get player.ban]" ||
		infos[1].GetLabels()["id"] != "gs-2" {
		t.Fatalf("infos %v", infos)
	}
	if len(departed) != 0 {
		t.Fatalf("departed %v with nobody gone", departed)
	}

	if !tab.remove("gs-2") || !changed(tab) {
		t.Fatal("remove of a connected instance did not signal a change")
	}
	if tab.remove("gs-2") || changed(tab) {
		t.Fatal("removing an unknown instance counted as a change")
	}
	fns, _, infos, departed = tab.snapshot()
	if fmt.Sprint(fns) != "[player.get]" || len(infos) != 1 {
		t.Fatalf("after remove: fns %v infos %v", fns, infos)
	}
	if len(departed) != 1 || departed[0].GetInstanceId() != "gs-2" || departed[0].GetIncarnation() != "i2" {
		t.Fatalf("departed %v, want gs-2/i2", departed)
	}

	// Back under the same id (a restart): no longer reported as departed.
	tab.put(inst("gs-2", "i2b", "player.get"))
	if _, _, _, departed = tab.snapshot(); len(departed) != 0 {
		t.Fatalf("a reconnected instance is still reported departed: %v", departed)
	}
}

// TestInstancesDeparturesBounded: the departed list keeps the newest
// maxDepartures and forgets entries older than departureMaxAge.
func TestInstancesDeparturesBounded(t *testing.T) {
	t.Parallel()
	tab := newInstances()
	n := maxDepartures + 10
	for i := range n {
		id := fmt.Sprintf("gs-%03d", i)
		tab.put(inst(id, "inc-"+id, "f"))
		tab.remove(id)
	}
	tab.mu.RLock()
	kept := len(tab.departed)
	tab.mu.RUnlock()
	if kept != maxDepartures {
		t.Fatalf("%d departures kept, want %d", kept, maxDepartures)
	}
	_, _, _, departed := tab.snapshot()
	if len(departed) != maxDepartures || departed[0].GetInstanceId() != "gs-010" || departed[len(departed)-1].GetInstanceId() != fmt.Sprintf("gs-%03d", n-1) {
		t.Fatalf("departed = %d entries from %s to %s; want the newest %d", len(departed),
			departed[0].GetInstanceId(), departed[len(departed)-1].GetInstanceId(), maxDepartures)
	}

	// Age the oldest half past departureMaxAge.
	tab.mu.Lock()
	for i := range tab.departed[:maxDepartures/2] {
		tab.departed[i].at = time.Now().Add(-departureMaxAge - time.Second)
	}
	tab.mu.Unlock()
	_, _, _, departed = tab.snapshot()
	if len(departed) != maxDepartures/2 || departed[0].GetInstanceId() != fmt.Sprintf("gs-%03d", 10+maxDepartures/2) {
		t.Fatalf("after ageing: %d departures starting at %s", len(departed), departed[0].GetInstanceId())
	}
}
