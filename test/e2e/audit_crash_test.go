package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"google.golang.org/grpc/metadata"
)

// TestAuditSurvivesServerKill kills the server with SIGKILL while operators
// invoke, restarts it, and checks that every call that was answered has
// exactly one audit row and that the chain verifies: an audit entry is in
// the journal file before the answer, and the restart replays what the
// flusher had not yet stored, once.
func TestAuditSurvivesServerKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	c := newCluster(t)
	// The server journals audit entries in its data dir, readable by it alone.
	if st, err := os.Stat(filepath.Join(c.dir, "audit.journal")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("audit journal in the data dir: %v, %v (want mode 0600)", st, err)
	}
	const answeredBeforeKill = 40
	var (
		mu       sync.Mutex
		answered []string
	)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			fn := c.currentFn()
			for i := 0; ctx.Err() == nil; i++ {
				id := fmt.Sprintf("audit-crash-%d-%d", w, i)
				cctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(ctx, "x-request-id", id), 5*time.Second)
				_, err := fn.InvokeFunction(cctx, &croupierv1.InvokeFunctionRequest{GameId: "demo", Env: "dev",
					FunctionId: "player.get", Payload: mustStruct(t, map[string]any{"player_id": "p1"})})
				cancel()
				if err != nil {
					return
				}
				mu.Lock()
				answered = append(answered, id)
				mu.Unlock()
			}
		})
	}
	waitFor(t, 60*time.Second, fmt.Sprintf("%d invocations answered", answeredBeforeKill), func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(answered) >= answeredBeforeKill
	})
	grpcAddr, httpAddr, tunnelAddr := c.grpc, c.http, c.tunnel
	c.server.kill()
	stop()
	wg.Wait()
	c.startServer(grpcAddr, httpAddr, tunnelAddr)
	t.Logf("%d calls answered before the kill; restart: %d journal replays logged", len(answered), c.server.countLog("audit journal replayed"))

	auditc := croupierv1.NewAuditServiceClient(c.conn)
	rows := map[string]int{}
	for token := ""; ; {
		list, err := auditc.ListAudit(context.Background(), &croupierv1.ListAuditRequest{FunctionId: "player.get", PageSize: 1000, PageToken: token})
		if err != nil {
			t.Fatalf("ListAudit: %v", err)
		}
		for _, e := range list.GetEntries() {
			rows[e.GetRequestId()]++
		}
		if token = list.GetNextPageToken(); token == "" {
			break
		}
	}
	for id, n := range rows {
		if n != 1 {
			t.Errorf("request %s has %d audit rows, want 1", id, n)
		}
	}
	for _, id := range answered {
		if rows[id] != 1 {
			t.Errorf("answered call %s has %d audit rows after the restart, want 1", id, rows[id])
		}
	}
	res, err := auditc.VerifyAudit(context.Background(), &croupierv1.VerifyAuditRequest{})
	if err != nil || !res.GetOk() {
		t.Fatalf("verify after the restart: %v %v", res, err)
	}
}
