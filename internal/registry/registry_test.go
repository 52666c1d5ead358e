package registry_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/registry"
)

func TestUpsertRejectsMalformedAgents(t *testing.T) {
	t.Parallel()
	tests := map[string]registry.Agent{
		"no id":              agent("", "g", "e"),
		"slash in id":        agent("a/b", "g", "e"),
		"no game":            agent("a", "", "e"),
		"no env":             agent("a", "g", ""),
		"no instance id":     agent("a", "g", "e", inst("", "f")),
		"slash in instance":  agent("a", "g", "e", inst("x/y", "f")),
		"duplicate instance": agent("a", "g", "e", inst("i", "f"), inst("i", "h")),
		"empty function":     agent("a", "g", "e", inst("i", "")),
		"nil descriptor":     withDescs(agent("a", "g", "e"), nil),
		"descriptor no id":   withDescs(agent("a", "g", "e"), desc("", "1")),
		"duplicate desc":     withDescs(agent("a", "g", "e"), desc("f", "1"), desc("f", "2")),
	}
	for name, a := range tests {
		r := registry.New(registry.Options{})
		if err := r.Upsert(a); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("%s: Upsert = %v, want ErrInvalid", name, err)
		}
		if _, ok := r.Agent(a.ID); ok {
			t.Errorf("%s: rejected agent was stored", name)
		}
	}
	r := registry.New(registry.Options{})
	for _, bad := range []struct{ game, env string }{{"", "e"}, {"g", ""}} {
		if err := r.PutDescriptor(bad.game, bad.env, desc("f", "1")); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("PutDescriptor(%q, %q) = %v, want ErrInvalid", bad.game, bad.env, err)
		}
	}
	if err := r.PutDescriptor("g", "e", nil); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("PutDescriptor(nil) = %v, want ErrInvalid", err)
	}
}

func TestQueries(t *testing.T) {
	t.Parallel()
	clk := newClock()
	r := registry.New(registry.Options{Now: clk.Now})
	a1 := agent("a1", "g", "prod", inst("i2", "player.ban", "player.kick"), inst("i1", "player.ban", "player.ban"))
	a1.Labels = map[string]string{"zone": "eu"}
	mustUpsert(t, r, a1)
	mustUpsert(t, r, agent("a0", "g", "prod", inst("x", "player.ban")))
	mustUpsert(t, r, agent("b1", "g", "test", inst("i1", "player.ban")))

	regs := r.Registrations(registry.Filter{Game: "g", Env: "prod"})
	if len(regs) != 2 || regs[0].GetFunctionId() != "player.ban" || regs[1].GetFunctionId() != "player.kick" {
		t.Fatalf("Registrations = %v, want player.ban, player.kick", regs)
	}
	ban := regs[0]
	if got := agentIDs(ban); !slices.Equal(got, []string{"a0", "a1"}) {
		t.Errorf("player.ban agents = %v, want [a0 a1]", got)
	}
	a1Info := ban.GetAgents()[1]
	if !slices.Equal(a1Info.GetInstances(), []string{"i1", "i2"}) || a1Info.GetLabels()["zone"] != "eu" ||
		a1Info.GetGameId() != "g" || a1Info.GetEnv() != "prod" || a1Info.GetVersion() != "1.0" || a1Info.GetAddr() != "a1:1" ||
		a1Info.GetLastHeartbeat() != clk.Now().UnixMilli() {
		t.Errorf("a1 info = %v", a1Info)
	}
	if kick := regs[1].GetAgents(); len(kick) != 1 || !slices.Equal(kick[0].GetInstances(), []string{"i2"}) {
		t.Errorf("player.kick agents = %v, want a1 with only i2", kick)
	}
	if !ban.GetEnabled() {
		t.Error("registration disabled by default")
	}

	want := []registry.InstanceRef{{"a0", "x"}, {"a1", "i1"}, {"a1", "i2"}}
	if got := r.Instances("g", "prod", "player.ban"); !slices.Equal(got, want) {
		t.Errorf("Instances = %v, want %v", got, want)
	}
	if got := want[1].Key(); got != "a1/i1" {
		t.Errorf("Key = %q", got)
	}
	if got := r.Instances("g", "prod", "nope"); len(got) != 0 {
		t.Errorf("Instances(unknown) = %v", got)
	}

	agents := r.Agents("g", "prod")
	if len(agents) != 2 || agents[0].GetAgentId() != "a0" || !slices.Equal(agents[1].GetInstances(), []string{"i1", "i2"}) {
		t.Errorf("Agents(g, prod) = %v", agents)
	}
	if all := r.Agents("", ""); len(all) != 3 {
		t.Errorf("Agents(all) has %d agents, want 3", len(all))
	}
	if one := r.Registrations(registry.Filter{Game: "g", Env: "test", Function: "player.ban"}); len(one) != 1 || one[0].GetAgents()[0].GetAgentId() != "b1" {
		t.Errorf("exact Registrations = %v", one)
	}
	if all := r.Registrations(registry.Filter{Function: "player.ban"}); len(all) != 2 || all[0].GetEnv() != "prod" || all[1].GetEnv() != "test" {
		t.Errorf("Registrations(function only) = %v", all)
	}
}

func TestScopesNeverLeak(t *testing.T) {
	t.Parallel()
	r := registry.New(registry.Options{})
	scopes := []struct{ game, env string }{{"A", "X"}, {"A", "Y"}, {"B", "X"}, {"B", "Y"}}
	chans := map[string]<-chan *croupierv1.RegistrationEvent{}
	for _, s := range scopes {
		ch, _, _ := watch(t, r, registry.Filter{Game: s.game, Env: s.env})
		chans[s.game+s.env] = ch
	}
	for _, s := range scopes {
		mustUpsert(t, r, agent("agent-"+s.game+s.env, s.game, s.env, inst("i", "shared.fn", "only."+s.game+s.env)))
		if err := r.PutDescriptor(s.game, s.env, desc("direct."+s.game+s.env, "1")); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range scopes {
		tag := s.game + s.env
		for _, reg := range r.Registrations(registry.Filter{Game: s.game, Env: s.env}) {
			if reg.GetGameId() != s.game || reg.GetEnv() != s.env {
				t.Errorf("%s query returned %s/%s/%s", tag, reg.GetGameId(), reg.GetEnv(), reg.GetFunctionId())
			}
			for _, a := range reg.GetAgents() {
				if a.GetAgentId() != "agent-"+tag {
					t.Errorf("%s registration %s lists foreign agent %s", tag, reg.GetFunctionId(), a.GetAgentId())
				}
			}
		}
		if got := r.Instances(s.game, s.env, "shared.fn"); len(got) != 1 || got[0].Agent != "agent-"+tag {
			t.Errorf("%s Instances = %v", tag, got)
		}
		if got := r.Agents(s.game, s.env); len(got) != 1 || got[0].GetAgentId() != "agent-"+tag {
			t.Errorf("%s Agents = %v", tag, got)
		}
	}
	for _, s := range scopes {
		marker(t, r, s.game, s.env, "zz.marker")
	}
	for _, s := range scopes {
		// Each watcher sees exactly its scope's registrations, then its marker.
		tag := s.game + s.env
		var fns []string
		for {
			ev := next(t, chans[tag])
			reg := ev.GetRegistration()
			if reg.GetGameId() != s.game || reg.GetEnv() != s.env {
				t.Fatalf("%s watcher got %v for %s/%s", tag, ev.GetType(), reg.GetGameId(), reg.GetEnv())
			}
			if reg.GetFunctionId() == "zz.marker" {
				break
			}
			fns = append(fns, reg.GetFunctionId())
		}
		slices.Sort(fns)
		if want := []string{"direct." + tag, "only." + tag, "shared.fn"}; !slices.Equal(fns, want) {
			t.Errorf("%s watcher saw %v, want %v", tag, fns, want)
		}
	}
}

func mustUpsert(t *testing.T, r *registry.Registry, a registry.Agent) {
	t.Helper()
	if err := r.Upsert(a); err != nil {
		t.Fatalf("Upsert(%s): %v", a.ID, err)
	}
}

func TestDescriptorLatestRegistrationWins(t *testing.T) {
	t.Parallel()
	r := registry.New(registry.Options{})
	version := func() string {
		t.Helper()
		d, ok := r.Descriptor("g", "e", "f")
		if !ok {
			return "<none>"
		}
		return d.GetVersion()
	}
	if v := version(); v != "<none>" {
		t.Fatalf("unregistered function has descriptor %q", v)
	}
	mustUpsert(t, r, withDescs(agent("a1", "g", "e", inst("i", "f")), desc("f", "v1")))
	mustUpsert(t, r, withDescs(agent("a2", "g", "e", inst("i", "f")), desc("f", "v2")))
	if v := version(); v != "v2" {
		t.Fatalf("after a2 registered v2: %q", v)
	}
	// a1 reconnects with the same old descriptor: not newer.
	mustUpsert(t, r, withDescs(agent("a1", "g", "e", inst("i", "f"), inst("j", "f")), desc("f", "v1")))
	if v := version(); v != "v2" {
		t.Fatalf("unchanged re-registration of v1 took over: %q", v)
	}
	mustUpsert(t, r, withDescs(agent("a1", "g", "e", inst("i", "f")), desc("f", "v3")))
	if v := version(); v != "v3" {
		t.Fatalf("after a1 registered v3: %q", v)
	}
	r.Remove("a1")
	if v := version(); v != "v2" {
		t.Fatalf("after the winner left, want the next latest v2, got %q", v)
	}
	if err := r.PutDescriptor("g", "e", desc("f", "direct")); err != nil {
		t.Fatal(err)
	}
	mustUpsert(t, r, withDescs(agent("a2", "g", "e", inst("i", "f")), desc("f", "v2")))
	if v := version(); v != "direct" {
		t.Fatalf("unchanged agent re-registration overrode the direct descriptor: %q", v)
	}
	r.Remove("a2")
	if v := version(); v != "direct" {
		t.Fatalf("direct descriptor lost with the last agent: %q", v)
	}
	if !r.DeleteDescriptor("g", "e", "f") || r.DeleteDescriptor("g", "e", "f") {
		t.Fatal("DeleteDescriptor reported wrong presence")
	}
	if v := version(); v != "<none>" {
		t.Fatalf("function still has a descriptor after everything left: %q", v)
	}
	// Served without any descriptor: a placeholder with the id.
	mustUpsert(t, r, agent("a3", "g", "e", inst("i", "f")))
	if d, ok := r.Descriptor("g", "e", "f"); !ok || d.GetId() != "f" {
		t.Fatalf("Descriptor of a function served without descriptor = %v, %v", d, ok)
	}
	// A descriptor for a function no instance serves does not register it.
	mustUpsert(t, r, withDescs(agent("a4", "g", "e"), desc("ghost", "1")))
	if _, ok := r.Descriptor("g", "e", "ghost"); ok {
		t.Fatal("descriptor without serving instance registered the function")
	}
}

func TestHeartbeatAndExpired(t *testing.T) {
	t.Parallel()
	clk := newClock()
	r := registry.New(registry.Options{Now: clk.Now})
	if err := r.Heartbeat("ghost", time.Time{}); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("Heartbeat(unknown) = %v, want ErrNotFound", err)
	}
	t0 := clk.Now()
	mustUpsert(t, r, agent("b", "g", "e"))
	mustUpsert(t, r, agent("a", "g", "e"))
	old := agent("c", "g", "e")
	old.LastHeartbeat = t0.Add(-time.Hour)
	mustUpsert(t, r, old)

	clk.Advance(30 * time.Second)
	if err := r.Heartbeat("a", time.Time{}); err != nil { // zero: now
		t.Fatal(err)
	}
	if err := r.Heartbeat("a", t0); err != nil { // older: ignored
		t.Fatal(err)
	}
	if a, _ := r.Agent("a"); !a.LastHeartbeat.Equal(clk.Now()) {
		t.Errorf("LastHeartbeat = %v, want %v (heartbeats never go back)", a.LastHeartbeat, clk.Now())
	}
	if got := r.Expired(t0.Add(time.Second)); !slices.Equal(got, []string{"b", "c"}) {
		t.Errorf("Expired = %v, want [b c]", got)
	}
	if got := r.Expired(t0.Add(-time.Minute)); !slices.Equal(got, []string{"c"}) {
		t.Errorf("Expired(t0-1m) = %v, want [c]", got)
	}
}

func TestAgentIsACopy(t *testing.T) {
	t.Parallel()
	r := registry.New(registry.Options{})
	in := withDescs(agent("a", "g", "e", inst("i", "f")), desc("f", "v1"))
	in.Labels = map[string]string{"k": "v"}
	mustUpsert(t, r, in)
	// The caller's values are copied at Upsert...
	in.Labels["k"] = "changed"
	in.Instances[0].Functions[0] = "other"
	in.Descriptors[0].Version = "changed"
	// ...and at Agent.
	got, ok := r.Agent("a")
	if !ok {
		t.Fatal("Agent not found")
	}
	got.Labels["k"] = "changed"
	got.Instances[0].ID = "changed"
	got.Descriptors[0].Version = "changed"

	again, _ := r.Agent("a")
	if again.Labels["k"] != "v" || again.Instances[0].ID != "i" || again.Instances[0].Functions[0] != "f" || again.Descriptors[0].GetVersion() != "v1" {
		t.Errorf("registry state changed through aliases: %+v", again)
	}
	if d, _ := r.Descriptor("g", "e", "f"); d.GetVersion() != "v1" {
		t.Errorf("descriptor changed through the caller's pointer: %q", d.GetVersion())
	}
	if _, ok := r.Agent("nope"); ok {
		t.Error("Agent(unknown) ok")
	}
	if r.Remove("nope") {
		t.Error("Remove(unknown) = true")
	}
}

func ExampleRegistry_Watch() {
	r := registry.New(registry.Options{})
	_ = r.Upsert(registry.Agent{ID: "a1", GameID: "g", Env: "prod",
		Instances: []registry.Instance{{ID: "i1", Functions: []string{"player.ban"}}}})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, _ := r.Watch(ctx, registry.Filter{Game: "g", Env: "prod"})
	fmt.Println((<-events).GetType(), (<-events).GetType()) // snapshot, then SYNCED

	r.Remove("a1")
	ev := <-events
	fmt.Println(ev.GetType(), ev.GetRegistration().GetFunctionId())
	// Output:
	// ADDED SYNCED
	// REMOVED player.ban
}
