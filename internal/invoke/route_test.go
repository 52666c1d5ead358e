package invoke_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	agentv1 "github.com/croupier/croupier/api/croupier/agent/v1"
	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/invoke"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const fnStats = "game.stats"

// TestInvokeSendsTheCall checks what reaches the agent: the instance, the
// payload, the assignment config and the actor, and what comes back.
func TestInvokeSendsTheCall(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addAgent(t, "a", []string{"1"}, fnGrant)
	if _, err := h.assignments.Set(context.Background(), game, env, fnGrant, true, map[string]string{"max": "10"}); err != nil {
		t.Fatal(err)
	}
	resp, err := h.invoke(fnGrant, grantPayload(2), nil)
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	if !resp.GetSuccess() || resp.GetInstance() != "a/1" || resp.GetResult().GetFields()["served_by"].GetStringValue() != "a/1" {
		t.Fatalf("response = %v", resp)
	}
	calls := h.caller.recorded()
	if len(calls) != 1 {
		t.Fatalf("%d calls, want 1", len(calls))
	}
	req := calls[0].req
	if calls[0].agent != "a" || req.GetInstanceId() != "1" || req.GetGameId() != game || req.GetEnv() != env ||
		req.GetFunctionId() != fnGrant || req.GetActor() != "op:alice" || req.GetConfig()["max"] != "10" ||
		req.GetPayload().GetFields()["count"].GetNumberValue() != 2 {
		t.Fatalf("request = agent %q %v", calls[0].agent, req)
	}

	// A function error is a normal response, not a status.
	h.caller.setAnswer(func(context.Context, string, *agentv1.InvokeRequest) (*agentv1.InvokeResponse, error) {
		return &agentv1.InvokeResponse{Success: false, Error: "no such player", ErrorCode: "PLAYER_NOT_FOUND"}, nil
	})
	resp, err = h.invoke(fnGrant, grantPayload(2), nil)
	if err != nil {
		t.Fatalf("Invoke with a function error: %v", err)
	}
	if resp.GetSuccess() || resp.GetErrorCode() != "PLAYER_NOT_FOUND" || resp.GetError() != "no such player" || resp.GetInstance() != "a/1" {
		t.Fatalf("function error response = %v", resp)
	}

	// A platform failure is a status.
	h.caller.setAnswer(func(context.Context, string, *agentv1.InvokeRequest) (*agentv1.InvokeResponse, error) {
		return nil, errUnavailable
	})
	if _, err := h.invoke(fnGrant, grantPayload(2), nil); !isStatus(err, codes.Unavailable) {
		t.Fatalf("Invoke with the agent gone = %v, want UNAVAILABLE", err)
	}
}

// TestRouteLeastLoaded holds calls open so instances get busy: each new call
// must go to an instance with nothing in flight, so N held calls cover all N
// instances; when they end, the counts drop back.
func TestRouteLeastLoaded(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addAgent(t, "a", []string{"1", "2"}, fnStats)
	h.addAgent(t, "b", []string{"1"}, fnStats)
	release := make(chan struct{})
	entered := make(chan string, 16)
	h.caller.setEntered(entered)
	h.caller.setAnswer(func(ctx context.Context, agent string, req *agentv1.InvokeRequest) (*agentv1.InvokeResponse, error) {
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return served(agent + "/" + req.GetInstanceId()), nil
	})
	var wg sync.WaitGroup
	seen := map[string]bool{}
	for i := range 3 {
		wg.Go(func() {
			if _, err := h.invoke(fnStats, nil, nil); err != nil {
				t.Errorf("held call %d: %v", i, err)
			}
		})
		select {
		case k := <-entered:
			if seen[k] {
				t.Fatalf("call %d went to %s, which is already busy (busy: %v)", i, k, seen)
			}
			seen[k] = true
		case <-time.After(5 * time.Second):
			t.Fatal("held call never reached the caller")
		}
	}
	// Everything is busy with one call each; a fourth call goes anywhere, and
	// while it is held the fifth must avoid its instance.
	wg.Go(func() {
		if _, err := h.invoke(fnStats, nil, nil); err != nil {
			t.Errorf("fourth call: %v", err)
		}
	})
	fourth := <-entered
	wg.Go(func() {
		if _, err := h.invoke(fnStats, nil, nil); err != nil {
			t.Errorf("fifth call: %v", err)
		}
	})
	if fifth := <-entered; fifth == fourth {
		t.Fatalf("fifth call went to %s, which holds two calls while others hold one", fifth)
	}
	close(release)
	wg.Wait()
}

// TestRouteLeastLoadedSpreadsTies: with nothing in flight every instance
// ties, and ties are broken at random rather than always picking the first.
func TestRouteLeastLoadedSpreadsTies(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addAgent(t, "a", []string{"1", "2"}, fnStats)
	h.addAgent(t, "b", []string{"1"}, fnStats)
	const n = 300
	for range n {
		if _, err := h.invoke(fnStats, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	count := map[string]int{}
	for _, c := range h.caller.recorded() {
		count[c.key()]++
	}
	// Uniform would be 100 each; below 40 is about 7 standard deviations out.
	for _, k := range []string{"a/1", "a/2", "b/1"} {
		if count[k] < 40 {
			t.Fatalf("idle instances got %v calls out of %d; ties are not spread", count, n)
		}
	}
}

func TestRouteTargeted(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addAgent(t, "a", []string{"1", "2"}, fnStats)
	h.addAgent(t, "b", []string{"1"}, fnStats)
	h.addAgent(t, "c", []string{"1"}, "other")
	targeted := func(target string) (*croupierv1.InvokeFunctionResponse, error) {
		return h.invoke(fnStats, nil, &croupierv1.InvokeOptions{RoutingMode: invoke.ModeTargeted, TargetAgent: target})
	}
	for range 10 {
		resp, err := targeted("a/2")
		if err != nil || resp.GetInstance() != "a/2" {
			t.Fatalf("targeted a/2 = %v, %v", resp, err)
		}
		resp, err = targeted("b")
		if err != nil || resp.GetInstance() != "b/1" {
			t.Fatalf("targeted b = %v, %v", resp, err)
		}
	}
	// By agent: any of its instances, never another agent's.
	got := map[string]int{}
	for range 60 {
		resp, err := targeted("a")
		if err != nil {
			t.Fatal(err)
		}
		got[resp.GetInstance()]++
	}
	if len(got) != 2 || got["a/1"] == 0 || got["a/2"] == 0 {
		t.Fatalf("targeted a reached %v; want both a/1 and a/2 and nothing else", got)
	}
	for _, target := range []string{"zz", "a/3", "c", "c/1", "a/1/x"} {
		_, err := targeted(target)
		ei := wantStatus(t, err, codes.NotFound, "TARGET_NOT_FOUND")
		if ei.GetDetails()["target_agent"] != target {
			t.Errorf("target %q: details %v", target, ei.GetDetails())
		}
	}
}

// hashRoute maps keys to instances with hash routing.
func hashRoute(t *testing.T, h *harness, keys []string) map[string]string {
	t.Helper()
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		resp, err := h.invoke(fnStats, nil, &croupierv1.InvokeOptions{RoutingMode: invoke.ModeHash, HashKey: k})
		if err != nil {
			t.Fatalf("hash %q: %v", k, err)
		}
		out[k] = resp.GetInstance()
	}
	return out
}

func TestRouteHash(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addAgent(t, "a", []string{"1", "2", "3"}, fnStats)
	h.addAgent(t, "b", []string{"1", "2"}, fnStats)
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("player-%d", i)
	}
	before := hashRoute(t, h, keys)
	if again := hashRoute(t, h, keys); fmt.Sprint(again) != fmt.Sprint(before) {
		t.Fatal("the same keys reached different instances with stable membership")
	}
	perInstance := map[string]int{}
	for _, in := range before {
		perInstance[in]++
	}
	if len(perInstance) != 5 {
		t.Fatalf("1000 keys used %d of 5 instances: %v", len(perInstance), perInstance)
	}

	// An instance joins: only keys that now land on it move (~1/6 of them).
	h.addAgent(t, "b", []string{"1", "2", "3"}, fnStats)
	after := hashRoute(t, h, keys)
	moved := 0
	for _, k := range keys {
		if after[k] != before[k] {
			moved++
			if after[k] != "b/3" {
				t.Fatalf("key %s moved from %s to %s, not to the new instance", k, before[k], after[k])
			}
		}
	}
	if lo, hi := len(keys)/12, len(keys)/3; moved < lo || moved > hi {
		t.Fatalf("%d of %d keys moved when a 6th instance joined; want about 1/6 (%d..%d)", moved, len(keys), lo, hi)
	}

	// It leaves again: exactly its keys move back where they were.
	h.addAgent(t, "b", []string{"1", "2"}, fnStats)
	if back := hashRoute(t, h, keys); fmt.Sprint(back) != fmt.Sprint(before) {
		t.Fatal("after the instance left, keys did not return to their original instances")
	}

	// An instance leaves: only its own keys move.
	h.addAgent(t, "a", []string{"1", "3"}, fnStats)
	gone := hashRoute(t, h, keys)
	for _, k := range keys {
		if before[k] != "a/2" && gone[k] != before[k] {
			t.Fatalf("key %s moved from %s to %s although only a/2 left", k, before[k], gone[k])
		}
		if gone[k] == "a/2" {
			t.Fatalf("key %s still routed to the departed a/2", k)
		}
	}
}

// TestRouteBroadcast aggregates per-instance outcomes: successes, function
// errors and platform errors, sorted by instance.
func TestRouteBroadcast(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addAgent(t, "a", []string{"1", "2"}, fnStats)
	h.addAgent(t, "b", []string{"1"}, fnStats)
	broadcast := &croupierv1.InvokeOptions{RoutingMode: invoke.ModeBroadcast}

	resp, err := h.invoke(fnStats, nil, broadcast)
	if err != nil {
		t.Fatalf("broadcast: %v", err)
	}
	if !resp.GetSuccess() || resp.GetErrorCode() != "" || len(resp.GetResults()) != 3 {
		t.Fatalf("all-success broadcast = %v", resp)
	}
	for i, want := range []string{"a/1", "a/2", "b/1"} {
		r := resp.GetResults()[i]
		if r.GetInstance() != want || !r.GetSuccess() || r.GetResult().GetFields()["served_by"].GetStringValue() != want {
			t.Fatalf("result %d = %v, want a success from %s", i, r, want)
		}
	}

	h.caller.setAnswer(func(_ context.Context, agent string, req *agentv1.InvokeRequest) (*agentv1.InvokeResponse, error) {
		switch agent + "/" + req.GetInstanceId() {
		case "a/2":
			return &agentv1.InvokeResponse{Success: false, Error: "shard offline", ErrorCode: "SHARD_DOWN"}, nil
		case "b/1":
			return nil, status.Error(codes.Unavailable, "agent b disconnected")
		}
		return served(agent + "/" + req.GetInstanceId()), nil
	})
	resp, err = h.invoke(fnStats, nil, broadcast)
	if err != nil {
		t.Fatalf("broadcast with failures is still a response: %v", err)
	}
	if resp.GetSuccess() || resp.GetErrorCode() != "PARTIAL_FAILURE" || resp.GetError() != "2 of 3 instances failed" {
		t.Fatalf("partial broadcast = %v", resp)
	}
	res := resp.GetResults()
	if len(res) != 3 || res[0].GetInstance() != "a/1" || !res[0].GetSuccess() ||
		res[1].GetInstance() != "a/2" || res[1].GetSuccess() || res[1].GetErrorCode() != "SHARD_DOWN" || res[1].GetError() != "shard offline" ||
		res[2].GetInstance() != "b/1" || res[2].GetSuccess() || res[2].GetErrorCode() != codes.Unavailable.String() || res[2].GetError() != "agent b disconnected" {
		t.Fatalf("partial results = %v", res)
	}
	if n := len(h.caller.recorded()); n != 6 {
		t.Fatalf("two broadcasts over 3 instances made %d calls, want 6", n)
	}
}
