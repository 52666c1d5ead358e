package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/freeport"
	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestClusterThreeNodes runs three `croupier server` processes on one
// PostgreSQL database, their embedded NATS servers routed into one
// cluster, and one agent given all three addresses. Calls on every node
// reach the agent (forwarded to the node holding its tunnel); when that
// node is killed the agent moves to another node and calls on the
// survivors work again, the same idempotency key included. It runs with
// the agent on each of the two transports that take several addresses.
func TestClusterThreeNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	dsn := os.Getenv("CROUPIER_TEST_POSTGRES_DSN")
	if dsn == "" {
		t.Skip("needs CROUPIER_TEST_POSTGRES_DSN (make unit starts a throwaway PostgreSQL)")
	}
	for _, transport := range []string{"grpc", "conn"} {
		t.Run(transport, func(t *testing.T) { testClusterThreeNodes(t, freshDatabase(t, dsn), transport) })
	}
}

func testClusterThreeNodes(t *testing.T, dsn, transport string) {
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	if out, code := run(t, nil, "certs", "init", "--dir", certs); code != 0 {
		t.Fatalf("certs init: %s", out)
	}
	if out, code := run(t, nil, "certs", "issue", "agent", "--name", "agent-c", "--game", "demo", "--env", "dev",
		"--ca-dir", certs, "--out", filepath.Join(certs, "agent-c")); code != 0 {
		t.Fatalf("certs issue: %s", out)
	}
	if out, code := run(t, nil, "migrate", "--store-driver", "postgres", "--store-dsn", dsn); code != 0 {
		t.Fatalf("migrate: %s", out)
	}
	// Route addresses must be known before the servers start.
	routePorts, err := freeport.Take(3)
	if err != nil {
		t.Fatal(err)
	}
	routeAddrs := make([]string, 3)
	for i, p := range routePorts {
		routeAddrs[i] = fmt.Sprintf("127.0.0.1:%d", p)
	}
	routes := "nats://" + strings.Join(routeAddrs, ",nats://")
	nodes := make([]*proc, 3)
	for i := range nodes {
		ndir := filepath.Join(dir, fmt.Sprintf("node%d", i+1))
		args := []string{"server", "--log-format", "json", "--node-id", fmt.Sprintf("node%d", i+1),
			"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--tunnel-http-addr", "",
			"--data-dir", ndir, "--tls-ca", filepath.Join(certs, "ca.crt"),
			"--tls-cert", filepath.Join(certs, "server.crt"), "--tls-key", filepath.Join(certs, "server.key"),
			"--store-driver", "postgres", "--store-dsn", dsn,
			"--scopes", "demo/dev", "--heartbeat-interval", "1s", "--rate-user", "0", "--job-orphan-grace", "3s",
			"--nats-cluster-name", "e2e", "--nats-cluster-listen", routeAddrs[i], "--nats-routes", routes,
			"--nats-token-file", busTokenFile(t, dir)}
		var env []string
		if i == 0 { // one node creates the operator; the others share the database
			env = []string{"CROUPIER_ADMIN_USER=operator", "CROUPIER_ADMIN_PASSWORD=" + adminPassword}
		}
		nodes[i] = startEnv(t, fmt.Sprintf("node%d", i+1), env, bins.croupier, args...)
	}
	addrs := make([]string, 3)
	fns := make([]croupierv1.FunctionServiceClient, 3)
	for i, p := range nodes {
		ev := p.waitLog("croupier server started", 60*time.Second)
		addrs[i] = ev["grpc"].(string)
		fns[i] = croupierv1.NewFunctionServiceClient(operatorConn(t, certs, addrs[i]))
	}
	agent := start(t, "agent-c", bins.croupier, "agent", "--log-format", "json", "--agent-id", "agent-c",
		"--game-id", "demo", "--env", "dev", "--server", strings.Join(addrs, ","), "--transport", transport,
		"--sdk-addr", "127.0.0.1:0", "--gse-addr", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "agent"),
		"--reconnect-max", "1s", "--tls-ca", filepath.Join(certs, "ca.crt"),
		"--tls-cert", filepath.Join(certs, "agent-c.crt"), "--tls-key", filepath.Join(certs, "agent-c.key"))
	// No --tls-server-name: each node's certificate is checked against the
	// host of its own address (127.0.0.1 here), on both connections.
	ev := agent.waitLog("croupier agent started", 30*time.Second)
	start(t, "gs-c1", bins.gameserver, "--agent", ev["sdk"].(string), "--instance", "gs-c1", "--functions", "player.get,mail.broadcast")

	call := func(node int, key string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := fns[node].InvokeFunction(ctx, &croupierv1.InvokeFunctionRequest{GameId: "demo", Env: "dev",
			FunctionId: "player.get", Payload: mustStruct(t, map[string]any{"player_id": "p1"}), Options: &croupierv1.InvokeOptions{IdempotencyKey: key}})
		return err
	}
	for i := range nodes {
		waitFor(t, 30*time.Second, fmt.Sprintf("a call on node%d reaches the agent", i+1), func() bool { return call(i, "") == nil })
	}
	holder := -1
	for i, p := range nodes {
		if p.countLog("agent tunnel connected") > 0 {
			holder = i
		}
	}
	if holder < 0 {
		t.Fatal("no node logged the agent's tunnel")
	}
	if err := call((holder+1)%3, "key-1"); err != nil {
		t.Fatalf("keyed call: %v", err)
	}
	// A job started through each other node is dispatched through the
	// holder (forwarded StartJob) and reported running (events via the
	// holder), seen from the third node; then the holder is killed mid-job.
	// The agent moves to one of the two creators, whose cached copy of its
	// job is behind the database: both jobs must still complete.
	jctx, jcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer jcancel()
	var jobIDs []string
	for _, n := range []int{(holder + 1) % 3, (holder + 2) % 3} {
		job, err := fns[n].InvokeJob(jctx, &croupierv1.InvokeJobRequest{GameId: "demo", Env: "dev", FunctionId: "mail.broadcast",
			Payload: mustStruct(t, map[string]any{"subject": "s", "body": "b", "recipients": []any{"p1", "p2", "p3", "p4", "p5"}, "delay_ms": float64(400)})})
		if err != nil {
			t.Fatalf("InvokeJob on node%d: %v", n+1, err)
		}
		jobIDs = append(jobIDs, job.GetJobId())
		waitFor(t, 20*time.Second, "the job runs", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			resp, err := fns[(n+1)%3].GetJob(ctx, &croupierv1.GetJobRequest{JobId: job.GetJobId()})
			return err == nil && resp.GetJob().GetStatus() == "running"
		})
	}
	nodes[holder].kill()
	survivor := (holder + 1) % 3
	start := time.Now()
	waitFor(t, 30*time.Second, "the agent moves to a surviving node", func() bool {
		err := call(survivor, "")
		if err != nil && status.Code(err) != codes.Unavailable && status.Code(err) != codes.NotFound && status.Code(err) != codes.FailedPrecondition {
			t.Logf("call during failover: %v", err)
		}
		return err == nil
	})
	t.Logf("agent reachable again %v after its node was killed", time.Since(start).Round(time.Millisecond))
	// Every survivor routes to the agent's new node once it has seen the
	// holder leave: until then a call fails UNAVAILABLE ("retry"), as the
	// issue allows; the agent can reconnect faster than that (62 ms once).
	for _, i := range []int{(holder + 1) % 3, (holder + 2) % 3} {
		waitFor(t, 30*time.Second, fmt.Sprintf("node%d routes to the agent after failover", i+1), func() bool {
			err := call(i, "")
			if err != nil && status.Code(err) != codes.Unavailable {
				t.Fatalf("call on node%d after failover: %v, want success or UNAVAILABLE", i+1, err)
			}
			return err == nil
		})
	}
	// The retry of a call made before the kill returns its first outcome.
	if err := call((holder+2)%3, "key-1"); err != nil {
		t.Fatalf("retry with the same idempotency key: %v", err)
	}
	// The job outlives its holder: the game server re-delivers the events
	// the dead node had not acknowledged through the agent's new node, and
	// the job completes, whichever survivor is asked.
	for _, id := range jobIDs {
		var last *croupierv1.Job
		waitFor(t, 30*time.Second, "job "+id+" completes after its holder died", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			resp, err := fns[survivor].GetJob(ctx, &croupierv1.GetJobRequest{JobId: id})
			if err == nil {
				last = resp.GetJob()
			}
			return err == nil && strings.Contains(" completed failed canceled ", " "+resp.GetJob().GetStatus()+" ")
		})
		if last.GetStatus() != "completed" || last.GetProgress() != 1 {
			t.Errorf("job %s after its holder died: %s (%s %s), progress %v; want completed, 1", id,
				last.GetStatus(), last.GetErrorCode(), last.GetError(), last.GetProgress())
		}
	}
	// Three nodes appended to one audit chain; it verifies.
	profile := filepath.Join(dir, "client.yaml")
	writeFile(t, profile, fmt.Sprintf("address: %s\nca: certs/ca.crt\ncert: certs/client.crt\nkey: certs/client.key\nserver_name: localhost\n", addrs[survivor]))
	if out, code := run(t, []string{"CROUPIER_PROFILE=" + profile}, "audit", "verify"); code != 0 {
		t.Fatalf("croupier audit verify: exit %d\n%s", code, out)
	}
}

// freshDatabase creates an empty database next to dsn's for one test (the
// audit chain it verifies is the whole table) and returns its DSN.
func freshDatabase(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	name := fmt.Sprintf("cluster_e2e_%d_%d", os.Getpid(), time.Now().UnixNano())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, dsn); err == nil {
			_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			_ = c.Close(ctx)
		}
	})
	u.Path = "/" + name
	return u.String()
}

// TestClusterScript runs scripts/cluster.sh, the documented way to start
// three nodes with the one binary (docs/cluster.md): they start on one
// PostgreSQL with routed NATS, every node logs the administrator in (one
// database), and stop ends them.
func TestClusterScript(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	dsn := os.Getenv("CROUPIER_TEST_POSTGRES_DSN")
	if dsn == "" {
		t.Skip("needs CROUPIER_TEST_POSTGRES_DSN (make unit starts a throwaway PostgreSQL)")
	}
	dsn = freshDatabase(t, dsn)
	dir := t.TempDir()
	script, err := filepath.Abs("../../scripts/cluster.sh")
	if err != nil {
		t.Fatal(err)
	}
	routePorts, err := freeport.Take(3)
	if err != nil {
		t.Fatal(err)
	}
	routes := make([]string, 3)
	for i, p := range routePorts {
		routes[i] = fmt.Sprint(p)
	}
	marker := newMarker()
	env := append(os.Environ(), marker, "CROUPIER="+bins.croupier, "GRPC_PORTS=0 0 0", "HTTP_PORTS=0 0 0",
		"ROUTE_PORTS="+strings.Join(routes, " "))
	script1 := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, script, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() {
		_, _ = script1("stop", dir)
		killMarked(t, marker)
	})
	out, err := script1("start", dir, dsn)
	if err != nil {
		t.Fatalf("cluster.sh start: %v\n%s", err, out)
	}
	var addrs []string
	for _, line := range strings.Split(out, "\n") {
		if name, addr, ok := strings.Cut(line, " "); ok && strings.HasPrefix(name, "node") {
			addrs = append(addrs, addr)
		}
	}
	if len(addrs) != 3 || !strings.Contains(out, "agent: ") {
		t.Fatalf("cluster.sh start printed:\n%s", out)
	}
	pw, err := os.ReadFile(filepath.Join(dir, "admin-password"))
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "admin-password")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin-password mode: %v, %v; want 0600", fi.Mode(), err)
	}
	for i, a := range addrs {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := croupierv1.NewAuthServiceClient(operatorConn(t, filepath.Join(dir, "certs"), a)).Login(ctx,
			&croupierv1.LoginRequest{Username: "operator", Password: strings.TrimSpace(string(pw))})
		cancel()
		if err != nil {
			t.Fatalf("login on node%d (%s): %v", i+1, a, err)
		}
	}
	if out, err := script1("stop", dir); err != nil {
		t.Fatalf("cluster.sh stop: %v\n%s", err, out)
	}
	for i := range 3 {
		if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("node%d.pid", i+1))); !os.IsNotExist(err) {
			t.Fatalf("node%d.pid left after stop (%v)", i+1, err)
		}
	}
}
