// Command cluster benchmarks end-to-end InvokeFunction throughput with 1, 2
// and 3 `croupier server` processes on one PostgreSQL database, their
// embedded NATS servers routed into one cluster (docs/cluster.md).
//
//	go run ./bench/cluster -dsn postgres://... [-bin bin/croupier] [-nodes 1,2,3]
//	    [-agents 6] [-duration 10s] [-concurrency 32] [-profile DIR]
//
// For each node count it starts the servers (real processes), -agents
// `croupier agent` processes spread round-robin over the nodes (each given
// one node's address, so the spread is exact), and one game server per
// agent (the demo game, in this process, through the SDK). Callers then
// invoke player.get on a random node each time; a call whose instance's
// agent is held by another node is forwarded over NATS. It prints, per node
// count, calls/s, p50/p99 latency, the forwarded share, the CPU time of
// every process (servers, agents, this process: callers and game servers)
// per call and the calls per CPU-second, then each count against 1 node
// measured in the same run (the baseline). After each run `croupier audit
// verify` checks the chain the nodes appended to concurrently. The CPU of
// the database's backends serving the run is reported too (PostgreSQL on
// this machine only), apart from the calls per CPU-second. With -profile
// (the binary built with -tags pprof) each server's CPU, mutex and block
// profiles of the measurement (and a CPU profile of the idle phase) are
// saved as DIR/<bin>-n<N>-node<i>-*.pprof.
//
// On a machine with fewer cores than processes, calls/s cannot grow with
// nodes (they share the cores); calls per CPU-second says what a node
// costs, and is what load from other jobs changes least.
package main

import (
	"bufio"
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/bench/internal/profile"
	"github.com/croupier/croupier/examples/demogame"
	"github.com/croupier/croupier/internal/freeport"
	"github.com/croupier/croupier/internal/tlsconf"
	"github.com/croupier/croupier/sdk"
	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/structpb"
)

func main() {
	dsn := flag.String("dsn", os.Getenv("CROUPIER_BENCH_POSTGRES_DSN"), "PostgreSQL DSN (a database per run is created next to it); `make bench` starts a throwaway one")
	bin := flag.String("bin", "bin/croupier", "the croupier binary")
	baseBin := flag.String("baseline-bin", "", "another croupier binary (e.g. the previous commit's) measured at every node count just before -bin, in the same run")
	nodesFlag := flag.String("nodes", "1,2,3", "server node counts to measure; the first is the baseline")
	agents := flag.Int("agents", 6, "agent processes (one game server each), spread round-robin over the nodes")
	dur := flag.Duration("duration", 10*time.Second, "length of each measurement")
	conc := flag.Int("concurrency", 32, "concurrent callers")
	profile := flag.String("profile", "", "save each server's profiles of the measurement into this directory (the binaries must be built with -tags pprof)")
	flag.Parse()
	var counts []int
	for _, f := range strings.Split(*nodesFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 9 {
			fail(fmt.Errorf("-nodes: %q is not a node count from 1 to 9", f))
		}
		counts = append(counts, n)
	}
	if *dsn == "" {
		fail(errors.New("-dsn (or CROUPIER_BENCH_POSTGRES_DSN) is required: several nodes share one PostgreSQL; scripts/postgres.sh start DIR prints one"))
	}
	if *agents < 1 || *conc < 1 || *dur <= 0 {
		fail(errors.New("-agents, -concurrency and -duration must be positive"))
	}
	if _, err := os.Stat(*bin); err != nil {
		fail(fmt.Errorf("-bin: %w (run make build)", err))
	}
	fmt.Printf("bench/cluster: %d agents, %d callers, %s per run, GOMAXPROCS of this process %d, %d CPUs\n",
		*agents, *conc, *dur, runtime.GOMAXPROCS(0), runtime.NumCPU())
	var results, baseline []result
	for _, n := range counts {
		if *baseBin != "" {
			fmt.Printf("[baseline-bin] ")
			r, err := measure(*baseBin, *dsn, n, *agents, *conc, *dur, *profile)
			if err != nil {
				fail(fmt.Errorf("baseline, %d nodes: %w", n, err))
			}
			r.print()
			baseline = append(baseline, r)
		}
		r, err := measure(*bin, *dsn, n, *agents, *conc, *dur, *profile)
		if err != nil {
			fail(fmt.Errorf("%d nodes: %w", n, err))
		}
		r.print()
		results = append(results, r)
	}
	base := results[0]
	for _, r := range results[1:] {
		fmt.Printf("%d nodes vs %d (same run): throughput x%.2f, calls per CPU-second x%.2f\n",
			r.nodes, base.nodes, r.rate()/base.rate(), r.perCPU()/base.perCPU())
	}
	for i, b := range baseline {
		r := results[i]
		fmt.Printf("%d nodes, -bin vs -baseline-bin: throughput x%.2f, calls per CPU-second x%.2f, forwarded %.0f%% vs %.0f%%\n",
			r.nodes, r.rate()/b.rate(), r.perCPU()/b.perCPU(), r.forwardedPct(), b.forwardedPct())
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench/cluster:", err)
	os.Exit(1)
}

type result struct {
	nodes                 int
	calls, forwarded      int64
	errs                  int64
	firstErr              string
	elapsed               time.Duration
	p50, p99              time.Duration
	cpuServers, cpuAgents time.Duration
	cpuSelf               time.Duration
	cpuPG                 time.Duration // the database's backends (not in cpu())
	idleServers           time.Duration // CPU per second of all servers with no calls
}

func (r result) rate() float64 { return float64(r.calls) / r.elapsed.Seconds() }
func (r result) cpu() time.Duration {
	return r.cpuServers + r.cpuAgents + r.cpuSelf
}
func (r result) forwardedPct() float64 { return 100 * float64(r.forwarded) / float64(max(r.calls, 1)) }
func (r result) perCPU() float64       { return float64(r.calls) / r.cpu().Seconds() }

func (r result) print() {
	perCall := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(max(r.calls, 1)) }
	fmt.Printf("nodes=%d  calls/s=%.0f  p50=%v p99=%v  forwarded=%.0f%%  errors=%d\n",
		r.nodes, r.rate(), r.p50.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond),
		100*float64(r.forwarded)/float64(max(r.calls, 1)), r.errs)
	fmt.Printf("  CPU µs per call: servers %.0f, agents %.0f, callers+game servers %.0f, total %.0f  =>  %.0f calls per CPU-second\n",
		perCall(r.cpuServers), perCall(r.cpuAgents), perCall(r.cpuSelf), perCall(r.cpu()), r.perCPU())
	fmt.Printf("  PostgreSQL backends %.0f µs per call; servers idle: %.1f ms CPU per second (all nodes)\n",
		perCall(r.cpuPG), float64(r.idleServers.Microseconds())/1000)
	if r.firstErr != "" {
		fmt.Printf("  first error: %s\n", r.firstErr)
	}
}

// measure runs one node count from scratch: fresh database, servers,
// agents, game servers; it stops them all before returning.
func measure(bin, dsn string, n, agents, conc int, dur time.Duration, profDir string) (res result, err error) {
	res.nodes = n
	dir, err := os.MkdirTemp("", "croupier-bench-cluster-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	var procs []*proc
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	db, drop, err := freshDatabase(dsn)
	if err != nil {
		return res, err
	}
	defer drop()
	certs := filepath.Join(dir, "certs")
	if err := runCmd(bin, "certs", "init", "--dir", certs); err != nil {
		return res, err
	}
	if err := runCmd(bin, "migrate", "--store-driver", "postgres", "--store-dsn", db); err != nil {
		return res, err
	}
	routes := make([]string, n)
	for i := range routes {
		if routes[i], err = freePort(); err != nil {
			return res, err
		}
	}
	// One bus token for the routed nodes (0600, as an operator would).
	tokenFile := filepath.Join(dir, "nats.token")
	if err := os.WriteFile(tokenFile, []byte(crand.Text()+"\n"), 0o600); err != nil {
		return res, err
	}
	addrs := make([]string, n)
	servers := make([]*proc, n)
	pprofAddrs := make([]string, n)
	for i := range n {
		args := []string{"server", "--log-format", "json", "--node-id", fmt.Sprintf("node%d", i+1),
			"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--tunnel-http-addr", "",
			"--data-dir", filepath.Join(dir, fmt.Sprintf("node%d", i+1)), "--tls-ca", filepath.Join(certs, "ca.crt"),
			"--tls-cert", filepath.Join(certs, "server.crt"), "--tls-key", filepath.Join(certs, "server.key"),
			"--store-driver", "postgres", "--store-dsn", db, "--scopes", "demo/dev", "--rate-user", "0", "--rate-function", "0"}
		if n > 1 {
			args = append(args, "--nats-cluster-name", "bench", "--nats-cluster-listen", routes[i],
				"--nats-routes", "nats://"+strings.Join(routes, ",nats://"), "--nats-token-file", tokenFile)
		}
		var env []string
		if i == 0 { // the client certificate's user; the other nodes share the database
			env = []string{"CROUPIER_ADMIN_USER=operator", "CROUPIER_ADMIN_PASSWORD=bench-password-1"}
		}
		if profDir != "" {
			if pprofAddrs[i], err = freePort(); err != nil {
				return res, err
			}
			env = append(env, "CROUPIER_PPROF_ADDR="+pprofAddrs[i])
		}
		p, err := startProc(fmt.Sprintf("node%d", i+1), env, bin, args...)
		if err != nil {
			return res, err
		}
		procs, servers[i] = append(procs, p), p
	}
	for i, p := range servers {
		ev, err := p.waitEvent("croupier server started", 90*time.Second)
		if err != nil {
			return res, err
		}
		addrs[i], _ = ev["grpc"].(string)
	}
	holder := map[string]int{} // agent id -> node index
	var agentProcs []*proc
	for k := range agents {
		id := fmt.Sprintf("agent-%d", k+1)
		if err := runCmd(bin, "certs", "issue", "agent", "--name", id, "--game", "demo", "--env", "dev",
			"--ca-dir", certs, "--out", filepath.Join(certs, id)); err != nil {
			return res, err
		}
		node := k % n
		holder[id] = node
		p, err := startProc(id, nil, bin, "agent", "--log-format", "json", "--agent-id", id,
			"--game-id", "demo", "--env", "dev", "--server", addrs[node], "--transport", "grpc",
			"--sdk-addr", "127.0.0.1:0", "--gse-addr", "", "--data-dir", filepath.Join(dir, id),
			"--tls-ca", filepath.Join(certs, "ca.crt"), "--tls-cert", filepath.Join(certs, id+".crt"),
			"--tls-key", filepath.Join(certs, id+".key"), "--tls-server-name", "localhost")
		if err != nil {
			return res, err
		}
		procs = append(procs, p)
		agentProcs = append(agentProcs, p)
	}
	for k, p := range agentProcs {
		ev, err := p.waitEvent("croupier agent started", 60*time.Second)
		if err != nil {
			return res, err
		}
		sdkAddr, _ := ev["sdk"].(string)
		c := sdk.New(sdk.Options{AgentAddr: sdkAddr, InstanceID: fmt.Sprintf("gs-%d", k+1), MaxConcurrent: 256,
			Logger: slog.New(slog.DiscardHandler)})
		if err := demogame.New(fmt.Sprintf("gs-%d", k+1), 100).Register(c, "player.get"); err != nil {
			return res, err
		}
		go func() { _ = c.Serve(ctx) }() // ends with ctx
	}

	conns := make([]croupierv1.FunctionServiceClient, n)
	ctls, err := tlsconf.ClientConfig(filepath.Join(certs, "ca.crt"), filepath.Join(certs, "client.crt"), filepath.Join(certs, "client.key"), "localhost")
	if err != nil {
		return res, err
	}
	for i, a := range addrs {
		cc, err := grpc.NewClient(a, grpc.WithTransportCredentials(credentials.NewTLS(ctls)))
		if err != nil {
			return res, err
		}
		defer cc.Close()
		conns[i] = croupierv1.NewFunctionServiceClient(cc)
	}
	payload, _ := structpb.NewStruct(map[string]any{"player_id": "p1"})
	callTo := func(node int, opts *croupierv1.InvokeOptions) (string, error) {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		defer ccancel()
		resp, err := conns[node].InvokeFunction(cctx, &croupierv1.InvokeFunctionRequest{GameId: "demo", Env: "dev", FunctionId: "player.get",
			Payload: payload, Options: opts})
		if err != nil {
			return "", err
		}
		if !resp.GetSuccess() {
			return "", fmt.Errorf("%s: %s", resp.GetErrorCode(), resp.GetError())
		}
		return resp.GetInstance(), nil
	}
	call := func(node int) (string, error) { return callTo(node, nil) }
	// Every node reaches every game server (targeted calls) before the
	// clock starts.
	deadline := time.Now().Add(60 * time.Second)
	for node := range n {
		for id := range holder {
			for {
				_, err := callTo(node, &croupierv1.InvokeOptions{RoutingMode: "targeted", TargetAgent: id})
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					return res, fmt.Errorf("node%d does not reach %s after 60s: %v", node+1, id, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	// The servers' CPU with no calls (membership, JetStream), then warm
	// up and measure.
	idle0, err := cpuOf(procs[:n])
	if err != nil {
		return res, err
	}
	t0 := time.Now()
	var idleProfs sync.WaitGroup
	if profDir != "" {
		for i, a := range pprofAddrs {
			idleProfs.Go(func() {
				prefix := fmt.Sprintf("%s-n%d-node%d", filepath.Base(bin), n, i+1)
				fetchProfile(a, "profile?seconds=3", filepath.Join(profDir, prefix+"-idle-cpu.pprof"))
			})
		}
	}
	time.Sleep(3 * time.Second)
	idleProfs.Wait()
	idle1, err := cpuOf(procs[:n])
	if err != nil {
		return res, err
	}
	for i := range idle1 {
		res.idleServers += idle1[i] - idle0[i]
	}
	res.idleServers = time.Duration(float64(res.idleServers) / time.Since(t0).Seconds()) // per second
	runLoad(ctx, conc, 2*time.Second, n, holder, call)
	pg, err := backends(ctx, db)
	if err != nil {
		return res, err
	}
	pgBefore := cpuOfPIDs(pg)
	before, err := cpuOf(procs)
	if err != nil {
		return res, err
	}
	var profs sync.WaitGroup
	if profDir != "" {
		for i, a := range pprofAddrs {
			profs.Go(func() {
				prefix := fmt.Sprintf("%s-n%d-node%d", filepath.Base(bin), n, i+1)
				fetchProfile(a, fmt.Sprintf("profile?seconds=%d", max(1, int(dur/time.Second))), filepath.Join(profDir, prefix+"-cpu.pprof"))
			})
		}
	}
	selfBefore := selfCPU()
	start := time.Now()
	st := runLoad(ctx, conc, dur, n, holder, call)
	res.elapsed = time.Since(start)
	after, err := cpuOf(procs)
	if err != nil {
		return res, err
	}
	res.cpuSelf = selfCPU() - selfBefore
	res.cpuPG = cpuOfPIDs(pg) - pgBefore
	profs.Wait()
	if profDir != "" {
		for i, a := range pprofAddrs {
			prefix := fmt.Sprintf("%s-n%d-node%d", filepath.Base(bin), n, i+1)
			for _, kind := range []string{"mutex", "block", "heap"} {
				fetchProfile(a, kind, filepath.Join(profDir, prefix+"-"+kind+".pprof"))
			}
		}
	}
	for i := range procs {
		d := after[i] - before[i]
		if i < n {
			res.cpuServers += d
		} else {
			res.cpuAgents += d
		}
	}
	res.calls, res.forwarded, res.errs, res.firstErr = st.calls, st.forwarded, st.errs, st.firstErr
	slices.Sort(st.lat)
	if len(st.lat) > 0 {
		res.p50, res.p99 = st.lat[len(st.lat)/2], st.lat[len(st.lat)*99/100]
	}
	// The nodes appended to one audit chain concurrently: it verifies.
	profile := filepath.Join(dir, "client.yaml")
	if err := os.WriteFile(profile, []byte(fmt.Sprintf("address: %s\nca: %s\ncert: %s\nkey: %s\nserver_name: localhost\n",
		addrs[n-1], filepath.Join(certs, "ca.crt"), filepath.Join(certs, "client.crt"), filepath.Join(certs, "client.key"))), 0o600); err != nil {
		return res, err
	}
	cmd := exec.Command(bin, "audit", "verify")
	cmd.Env = append(os.Environ(), "CROUPIER_PROFILE="+profile)
	if out, err := cmd.CombinedOutput(); err != nil {
		return res, fmt.Errorf("audit verify after the run: %v\n%s", err, out)
	}
	return res, nil
}

type loadStats struct {
	calls, forwarded, errs int64
	firstErr               string
	lat                    []time.Duration
}

// runLoad keeps conc callers busy for dur, each call on a random node.
func runLoad(ctx context.Context, conc int, dur time.Duration, n int, holder map[string]int, call func(int) (string, error)) loadStats {
	var (
		mu    sync.Mutex
		total loadStats
		stop  atomic.Bool
		wg    sync.WaitGroup
	)
	timer := time.AfterFunc(dur, func() { stop.Store(true) })
	defer timer.Stop()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine loadStats
			for !stop.Load() && ctx.Err() == nil {
				node := rand.IntN(n)
				t0 := time.Now()
				inst, err := call(node)
				if err != nil {
					mine.errs++
					if mine.firstErr == "" {
						mine.firstErr = err.Error()
					}
					continue
				}
				mine.lat = append(mine.lat, time.Since(t0))
				mine.calls++
				agent, _, _ := strings.Cut(inst, "/")
				if h, ok := holder[agent]; ok && h != node {
					mine.forwarded++
				}
			}
			mu.Lock()
			total.calls += mine.calls
			total.forwarded += mine.forwarded
			total.errs += mine.errs
			if total.firstErr == "" {
				total.firstErr = mine.firstErr
			}
			total.lat = append(total.lat, mine.lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return total
}

// proc is a child process whose JSON log lines are scanned for events.
type proc struct {
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	evs  []map[string]any
	tail []string // the last lines, for errors
	done chan struct{}
	cond *sync.Cond
}

func startProc(name string, env []string, bin string, args ...string) (*proc, error) {
	p := &proc{name: name, done: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { // ends when the process's output closes
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var m map[string]any
			_ = json.Unmarshal(sc.Bytes(), &m)
			p.mu.Lock()
			if m != nil && len(p.evs) < 1000 {
				p.evs = append(p.evs, m)
			}
			p.tail = append(p.tail, sc.Text())
			if len(p.tail) > 20 {
				p.tail = p.tail[1:]
			}
			p.cond.Broadcast()
			p.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() { // ends with the process
		_ = p.cmd.Wait()
		_ = pw.Close()
		close(p.done)
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	}()
	return p, nil
}

// waitEvent returns the first log event with message msg.
func (p *proc) waitEvent(msg string, timeout time.Duration) (map[string]any, error) {
	t := time.AfterFunc(timeout, func() { p.mu.Lock(); p.cond.Broadcast(); p.mu.Unlock() })
	defer t.Stop()
	deadline := time.Now().Add(timeout)
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		for _, ev := range p.evs {
			if ev["msg"] == msg {
				return ev, nil
			}
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s exited before %q:\n%s", p.name, msg, strings.Join(p.tail, "\n"))
		default:
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s: no %q after %s:\n%s", p.name, msg, timeout, strings.Join(p.tail, "\n"))
		}
		p.cond.Wait()
	}
}

func (p *proc) stop() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// cpuOf returns each process's user+system CPU time so far.
func cpuOf(procs []*proc) ([]time.Duration, error) {
	out := make([]time.Duration, len(procs))
	for i, p := range procs {
		d, err := procCPU(p.cmd.Process.Pid)
		if err != nil {
			return nil, fmt.Errorf("CPU time of %s: %w", p.name, err)
		}
		out[i] = d
	}
	return out, nil
}

// procCPU returns a process's user+system CPU time so far (Linux /proc).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may hold spaces) start at
	// state (3); utime and stime are fields 14 and 15, in clock ticks.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("unexpected /proc stat %q", s)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// backends returns the process ids of the PostgreSQL backends serving the
// database db (the servers' pools, warm by now).
func backends(ctx context.Context, db string) ([]int, error) {
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int])
}

// cpuOfPIDs sums the CPU time of processes (0 for one that is gone or
// not readable, e.g. a database on another machine).
func cpuOfPIDs(pids []int) time.Duration {
	var sum time.Duration
	for _, pid := range pids {
		d, _ := procCPU(pid)
		sum += d
	}
	return sum
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func runCmd(bin string, args ...string) error {
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("croupier %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// freePort is a loopback address free a moment ago, outside the kernel's
// ephemeral range (freeport).
func freePort() (string, error) {
	p, err := freeport.Take(1)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("127.0.0.1:%d", p[0]), nil
}

// freshDatabase creates an empty database next to dsn's and returns its
// DSN and a function that drops it.
func freshDatabase(dsn string) (string, func(), error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", nil, fmt.Errorf("-dsn: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", nil, err
	}
	defer conn.Close(ctx)
	name := fmt.Sprintf("bench_cluster_%d_%d", os.Getpid(), time.Now().UnixNano())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, err
	}
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, dsn); err == nil {
			_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			_ = c.Close(ctx)
		}
	}
	u.Path = "/" + name
	return u.String(), drop, nil
}

// fetchProfile saves one of a server's pprof endpoints into file.
func fetchProfile(addr, path, file string) {
	if err := profile.Fetch(addr, path, file); err != nil {
		fmt.Fprintf(os.Stderr, "bench/cluster: profile %s from %s: %v (built with -tags pprof?)\n", path, addr, err)
	}
}
