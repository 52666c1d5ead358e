package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"google.golang.org/protobuf/types/known/structpb"
)

// countLog counts the log lines whose msg is msg.
func (p *proc) countLog(msg string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range p.lines {
		if l["msg"] == msg {
			n++
		}
	}
	return n
}

// TestJobsSurviveServerKill kills the server with SIGKILL while jobs are
// being created — at a different point each round: after the 1st, 3rd, 5th,
// ... job of the round is stored, with more creations in flight — restarts
// it, and checks that every job of the round reaches a terminal state within
// the orphan grace (plus one check interval) and that `job watch` ends.
func TestJobsSurviveServerKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	const (
		grace  = 3 * time.Second
		rounds = 5
	)
	c := newCluster(t, "--job-orphan-grace", grace.String())
	pl, err := structpb.NewStruct(map[string]any{"subject": "s", "body": "b", "recipients": []any{"p1", "p2", "p3"}, "delay_ms": float64(100)})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for round := range rounds {
		killAfter := 1 + 2*round
		base := c.server.countLog("job created")
		fn := c.currentFn()
		ctx, stop := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w := range 3 { // creators, until the server is gone
			wg.Add(1)
			go func() {
				defer wg.Done()
				targets := []string{"agent-a/gs-a1", "agent-a/gs-a2", "agent-b/gs-b1"}
				for ctx.Err() == nil {
					cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					_, err := fn.InvokeJob(cctx, &croupierv1.InvokeJobRequest{GameId: "demo", Env: "dev", FunctionId: "mail.broadcast",
						Payload: pl, Options: &croupierv1.InvokeOptions{RoutingMode: "targeted", TargetAgent: targets[w]}})
					cancel()
					if err != nil {
						return
					}
				}
			}()
		}
		waitFor(t, 30*time.Second, fmt.Sprintf("round %d: %d jobs created", round, killAfter), func() bool {
			return c.server.countLog("job created")-base >= killAfter
		})
		grpcAddr, httpAddr, tunnelAddr := c.grpc, c.http, c.tunnel
		c.server.kill()
		stop()
		wg.Wait()
		c.startServer(grpcAddr, httpAddr, tunnelAddr)
		restarted := time.Now()

		// Every job the dead server stored, also those whose creation never
		// answered.
		var ids []string
		list, err := c.currentFn().ListJobs(context.Background(), &croupierv1.ListJobsRequest{GameId: "demo", PageSize: 500})
		if err != nil {
			t.Fatalf("ListJobs: %v", err)
		}
		for _, j := range list.GetJobs() {
			if !seen[j.GetJobId()] {
				seen[j.GetJobId()] = true
				ids = append(ids, j.GetJobId())
			}
		}
		if len(ids) < killAfter {
			t.Fatalf("round %d: %d new jobs stored, want at least %d", round, len(ids), killAfter)
		}
		for deadline := restarted.Add(grace + 5*time.Second); ; time.Sleep(50 * time.Millisecond) {
			var open []string
			for _, id := range ids {
				if j := c.job(t, id); !isTerminalStatus(j.GetStatus()) {
					open = append(open, id+" "+j.GetStatus())
				}
			}
			if len(open) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: %d of %d jobs still not ended %s after the restart (grace %s): %v",
					round, len(open), len(ids), time.Since(restarted).Round(time.Millisecond), grace, open)
			}
		}
		took := time.Since(restarted)
		// The last job created is the likeliest to have been cut short.
		out, code := run(t, []string{"CROUPIER_PROFILE=" + c.profile}, "job", "watch", ids[0], "-o", "json")
		if code == 2 || !strings.Contains(out, `"seq"`) {
			t.Fatalf("round %d: job watch %s: exit %d\n%s", round, ids[0], code, out)
		}
		t.Logf("round %d: killed after %d creations; %d jobs ended %s after the restart", round, killAfter, len(ids), took.Round(10*time.Millisecond))
	}
}

func isTerminalStatus(s string) bool { return s == "completed" || s == "failed" || s == "canceled" }
