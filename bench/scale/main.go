// Command scale measures how the control plane scales with the size of the
// fleet: N agents, each with its own mTLS connection and tunnel, each
// registering one game-server instance that serves 5 functions, against one
// server.
//
//	go run ./bench/scale [-n 10,100,1000] [-bin bin/croupier] [-baseline-bin old/croupier] [-duration 5s]
//
// With -baseline-bin, every N is measured first against that binary and
// then against -bin, in the same run (make bench-scale BASELINE=<git ref>
// builds the baseline from a commit).
//
// The server is a real `croupier server` process (bin/croupier, built by
// `make build`) on 127.0.0.1 with SQLite in a temporary directory, so its CPU
// time, RSS and goroutines are measured on their own (/proc and /metrics).
// The agents live in this harness process: each is a real tunnel client
// (on the conn transport beside its own gRPC connection, as croupier
// agent's default takes it; -transport grpc: a stream on that connection)
// with its own agent certificate, and registers
// through ControlService and heartbeats like `croupier agent` (a tunnel ping
// the server counts; the Heartbeat RPC only after a ping it did not count,
// so a baseline server from before that gets the RPC); the game-server hop
// behind the agent (the SDK on loopback) is replaced by a raw handler that
// answers at once, so at N=5,000 the harness holds two sockets per agent
// (its gRPC connection and its conn-transport tunnel; one with -transport
// grpc) instead of five (the open-file hard limit is 20,000). What the server sees
// is the same as with real agents.
//
// For every N it first measures the heartbeat floor (floor.go: what a bare
// TCP echo process spends per lone heartbeat on this machine; -floor=false
// skips it), then prints one line per metric; see docs/benchmarks.md.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	agentv1 "github.com/croupier/croupier/api/croupier/agent/v1"
	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/bench/internal/profile"
	"github.com/croupier/croupier/internal/certs"
	"github.com/croupier/croupier/internal/tunnel"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
)

const (
	game, env = "bench", "scale"
	functions = 5
	// heartbeat is the server's heartbeat interval in the run (its default);
	// agents heartbeat and ping their tunnel at this interval.
	heartbeat = 10 * time.Second
)

func main() {
	ns := flag.String("n", "10,100,1000", "fleet sizes, comma-separated")
	bin := flag.String("bin", "bin/croupier", "croupier binary (make build)")
	dur := flag.Duration("duration", 5*time.Second, "length of the c=32 throughput run")
	calls := flag.Int("calls", 1000, "sequential lb calls for the p50")
	idle := flag.Duration("idle", 20*time.Second, "idle window for heartbeat CPU")
	deltas := flag.Bool("watch-deltas", true, "watch in delta form (false: whole registrations, as seed clients)")
	baseline := flag.String("baseline-bin", "", "another croupier binary to measure first at every N, as the baseline")
	profile := flag.String("profile", "", "write server profiles of each phase into this directory (the -bin binary must be built with -tags pprof)")
	floor := flag.Bool("floor", true, "measure the heartbeat floor (a bare TCP echo process, see floor.go) at every N first")
	floorServer := flag.Bool("floor-server", false, "run as the floor's echo process (used by -floor)")
	transport := flag.String("transport", "conn", "the agents' tunnel: conn (the conn transport on the gRPC port, what croupier agent's default, auto, takes there; a -baseline-bin from before the conn transport needs grpc) or grpc (a gRPC stream on the agent's gRPC connection)")
	flag.Parse()
	if *transport != "conn" && *transport != "grpc" {
		fmt.Fprintf(os.Stderr, "scale: -transport %q: use conn or grpc\n", *transport)
		os.Exit(2)
	}
	if *floorServer {
		if err := serveFloor(); err != nil {
			fmt.Fprintln(os.Stderr, "scale: floor server:", err)
			os.Exit(1)
		}
		return
	}
	// An interrupt (or timeout -s INT) ends the run: the server gets SIGTERM
	// and the fleet closes instead of outliving the harness.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var sizes []int
	for _, s := range strings.Split(*ns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "scale: bad -n entry %q\n", s)
			os.Exit(2)
		}
		sizes = append(sizes, n)
	}
	for _, n := range sizes {
		var floorCPU time.Duration
		if *floor {
			var err error
			if floorCPU, err = heartbeatFloor(ctx, n, heartbeat, *idle); err != nil {
				fmt.Fprintf(os.Stderr, "scale: N=%d: heartbeat floor: %v\n", n, err)
				os.Exit(1)
			}
			fmt.Printf("N=%d  heartbeat_floor            %.1f µs of CPU per heartbeat for a bare TCP echo process (no TLS, HTTP/2 or gRPC), %d connections, one %d-byte message each per %v\n",
				n, float64(floorCPU.Nanoseconds())/1e3, n, floorMessage, heartbeat)
		}
		bins := []string{*bin}
		if *baseline != "" {
			bins = []string{*baseline, *bin}
		}
		for _, b := range bins {
			if err := run(ctx, params{bin: b, n: n, dur: *dur, calls: *calls, idle: *idle, deltas: *deltas, profile: *profile, floor: floorCPU,
				transport: *transport}); err != nil {
				os.Exit(1)
			}
		}
	}
}

// params are one run's settings.
type params struct {
	bin       string
	n, calls  int
	dur, idle time.Duration
	deltas    bool   // the watch form the ramp's watcher asks for
	transport string // the agents' tunnel: "conn" or "grpc"
	profile   string
	floor     time.Duration // the heartbeat floor measured at this N; 0: not measured
}

// run measures one server binary at one fleet size. Its error is printed
// by run itself, before the deferred teardown of the fleet and the server:
// a teardown that hangs must not hide why the run failed.
func run(ctx context.Context, p params) (err error) {
	defer func() {
		if err != nil {
			fmt.Fprintf(os.Stderr, "scale: N=%d (%s): %v; tearing down\n", p.n, p.bin, err)
		}
	}()
	n, idle := p.n, p.idle
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dir, err := os.MkdirTemp("", "croupier-scale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bundle, err := certs.EnsureDev(filepath.Join(dir, "certs"))
	if err != nil {
		return err
	}
	srv, err := startServer(ctx, p.bin, dir, p.profile != "")
	if err != nil {
		return err
	}
	defer srv.stop()
	prof := &profiler{srv: srv, dir: p.profile, prefix: fmt.Sprintf("n%d-%s", n, filepath.Base(p.bin))}
	defer prof.wait()

	roots := x509.NewCertPool()
	caPEM, err := os.ReadFile(bundle.CACert)
	if err != nil {
		return err
	}
	roots.AppendCertsFromPEM(caPEM)
	opCert, err := tls.LoadX509KeyPair(bundle.ClientCert, bundle.ClientKey)
	if err != nil {
		return err
	}
	srv.hc = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{opCert},
		ServerName: "localhost", MinVersion: tls.VersionTLS13}}}
	op, err := dialTLS(srv.grpc, roots, opCert)
	if err != nil {
		return err
	}
	defer op.Close()

	// Agent certificates are issued before anything is measured.
	agentCerts := make([]tls.Certificate, n+1)
	for i := range agentCerts {
		certPEM, keyPEM, err := certs.Issue(bundle.Dir, certs.IssueRequest{Kind: certs.KindAgent, Name: agentName(i), Game: game, Env: env})
		if err != nil {
			return err
		}
		if agentCerts[i], err = tls.X509KeyPair(certPEM, keyPEM); err != nil {
			return err
		}
	}

	time.Sleep(time.Second) // let start-up work settle before the baseline
	base := srv.sample()
	// The server's own idle CPU with no agents, subtracted from the idle
	// window below so per-heartbeat CPU is the agents' share only.
	time.Sleep(idle / 2)
	idleBase := 2 * (srv.sample().cpu - base.cpu)
	base = srv.sample()

	// A watcher of the whole scope counts the bytes the ramp sends it.
	var watchBytes, watchEvents atomic.Int64
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	ws, err := croupierv1.NewRegistryServiceClient(op).WatchRegistrations(wctx, &croupierv1.WatchRegistrationsRequest{GameId: game, Env: env, Deltas: p.deltas})
	if err != nil {
		return err
	}
	watchDone := make(chan error, 1)
	go func() {
		for {
			ev, err := ws.Recv()
			if err != nil {
				watchDone <- err
				return
			}
			watchBytes.Add(int64(proto.Size(ev)))
			watchEvents.Add(1)
		}
	}()

	// Ramp: N agents connect and register, 16 at a time.
	fleet := &fleet{roots: roots, addr: srv.grpc, transport: p.transport}
	defer fleet.close()
	regLat := make([]time.Duration, n)
	t0 := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	var rampErr atomic.Pointer[error]
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			d, err := fleet.start(ctx, i, agentCerts[i])
			if err != nil {
				rampErr.CompareAndSwap(nil, &err)
				return
			}
			regLat[i] = d
		}()
	}
	wg.Wait()
	if p := rampErr.Load(); p != nil {
		return fmt.Errorf("ramp: %w", *p)
	}
	rampWall := time.Since(t0)
	if err := waitInstances(ctx, op, n); err != nil {
		return err
	}
	afterRamp := srv.sample()
	// The watch stream may still be draining: wait until it stops growing.
	for last, stable := int64(-1), 0; stable < 5; {
		if b := watchBytes.Load(); b == last {
			stable++
		} else {
			last, stable = b, 0
		}
		select {
		case err := <-watchDone:
			return fmt.Errorf("watch ended during the ramp: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	wcancel()

	// One more agent: the cost of a registration into a fleet of N.
	extra, err := fleet.connect(ctx, n, agentCerts[n])
	if err != nil {
		return err
	}
	var oneMore []time.Duration
	for i := range 21 {
		d, err := extra.register(ctx, fmt.Sprintf("gs-%d", i%2))
		if err != nil {
			return err
		}
		oneMore = append(oneMore, d)
	}
	extra.close()

	prof.snapshot("heap-after-ramp", "heap")
	// Idle: only heartbeats and tunnel pings.
	prof.cpu("idle", idle)
	i0, rpcs0 := srv.sample(), fleet.heartbeatRPCs.Load()
	time.Sleep(idle)
	i1, rpcs1 := srv.sample(), fleet.heartbeatRPCs.Load()
	idleCPU := i1.cpu - i0.cpu
	harnessFDs, _ := os.ReadDir("/proc/self/fd")
	agentsIdle := max(0, idleCPU-idleBase)
	beats := float64(n) * idle.Seconds() / heartbeat.Seconds()

	// Queries and calls.
	rc := croupierv1.NewRegistryServiceClient(op)
	getReg := func(ctx context.Context) error {
		r, err := rc.GetRegistrations(ctx, &croupierv1.GetRegistrationsRequest{GameId: game, Env: env, FunctionId: fnName(0)})
		if err == nil && len(r.GetRegistrations()) != 1 {
			err = fmt.Errorf("GetRegistrations returned %d registrations", len(r.GetRegistrations()))
		}
		return err
	}
	regP50, err := p50(ctx, getReg, 200)
	if err != nil {
		return fmt.Errorf("GetRegistrations: %w", err)
	}
	fc := croupierv1.NewFunctionServiceClient(op)
	payload, _ := structpb.NewStruct(map[string]any{"player_id": "p42"})
	// Broadcasts get the longest timeout the server allows by default: at
	// N=5,000 on a loaded machine one takes longer than the default 10 s.
	// Instances that fail are counted and reported, not fatal: a slow
	// machine's timeouts are a result too.
	var bcastFailed atomic.Int64
	invoke := func(mode string, want int) caller {
		var timeout int32
		if mode == "broadcast" {
			timeout = 300
		}
		return func(ctx context.Context) error {
			r, err := fc.InvokeFunction(ctx, &croupierv1.InvokeFunctionRequest{GameId: game, Env: env, FunctionId: fnName(0), Payload: payload,
				Options: &croupierv1.InvokeOptions{RoutingMode: mode, Timeout: timeout}})
			switch {
			case err != nil:
				return err
			case mode == "broadcast" && len(r.GetResults()) != want:
				return fmt.Errorf("broadcast reached %d instances, want %d", len(r.GetResults()), want)
			case mode == "broadcast":
				for _, res := range r.GetResults() {
					if !res.GetSuccess() {
						bcastFailed.Add(1)
					} else if !res.GetResult().GetFields()["ok"].GetBoolValue() {
						return fmt.Errorf("broadcast: instance %s answered but its result %v is not the agent's", res.GetInstance(), res.GetResult())
					}
				}
			case !r.GetSuccess():
				return fmt.Errorf("%s: %s", r.GetErrorCode(), r.GetError())
			case !r.GetResult().GetFields()["ok"].GetBoolValue():
				return fmt.Errorf("%s: result %v is not the agent's", mode, r.GetResult())
			}
			return nil
		}
	}
	lb := invoke("lb", 1)
	for range 200 { // warm-up
		if err := lb(ctx); err != nil {
			return fmt.Errorf("lb warm-up: %w", err)
		}
	}
	lbP50, err := p50(ctx, lb, p.calls)
	if err != nil {
		return fmt.Errorf("lb: %w", err)
	}
	prof.snapshot("mutex-before-lb", "mutex")
	prof.snapshot("block-before-lb", "block")
	prof.cpu("lb", p.dur)
	c0, h0 := srv.sample(), selfCPU()
	tput, ncalls, err := throughput(ctx, lb, 32, p.dur)
	if err != nil {
		return fmt.Errorf("lb c=32: %w", err)
	}
	c1, h1 := srv.sample(), selfCPU()
	prof.wait()
	prof.snapshot("mutex-after-lb", "mutex")
	prof.snapshot("block-after-lb", "block")
	bcalls := max(5, min(50, 20000/n))
	prof.cpu("broadcast", time.Duration(bcalls)*time.Duration(n)*100*time.Microsecond+time.Second)
	b0, hb0 := srv.sample(), selfCPU()
	bcast, err := p50(ctx, invoke("broadcast", n), bcalls)
	if err != nil {
		return fmt.Errorf("broadcast: %w", err)
	}
	b1, hb1 := srv.sample(), selfCPU()
	var hits int64
	for _, a := range fleet.agents {
		hits += a.calls.Load()
	}

	slices.Sort(regLat)
	slices.Sort(oneMore)
	rampCPU := afterRamp.cpu - base.cpu
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("N=%d  server %s  agents on %s  (load average %s)\n", n, p.bin, p.transport, strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Printf("  ramp_wall                  %v (%.2f ms/agent)\n", rampWall.Round(time.Millisecond), ms(rampWall)/float64(n))
	fmt.Printf("  register_p50               %.2f ms  (p99 %.2f ms, during the ramp)\n", ms(regLat[n/2]), ms(regLat[n*99/100]))
	fmt.Printf("  server_cpu_per_agent       %.2f ms  (ramp CPU %v)\n", ms(rampCPU)/float64(n), rampCPU.Round(time.Millisecond))
	fmt.Printf("  one_more_register_p50      %.2f ms\n", ms(oneMore[len(oneMore)/2]))
	fmt.Printf("  watch_bytes_ramp           %.3f MiB in %d events (%.0f B/agent)\n", float64(watchBytes.Load())/(1<<20), watchEvents.Load(), float64(watchBytes.Load())/float64(n))
	fmt.Printf("  rss_per_agent              %.0f KiB  (server RSS %.1f MiB, baseline %.1f MiB)\n",
		float64(afterRamp.rss-base.rss)/1024/float64(n), float64(afterRamp.rss)/(1<<20), float64(base.rss)/(1<<20))
	fmt.Printf("  rss_per_idle_agent         %.0f KiB  (after the idle window: server RSS %.1f MiB)\n",
		float64(i1.rss-base.rss)/1024/float64(n), float64(i1.rss)/(1<<20))
	fmt.Printf("  open_fds                   server %d, harness %d (hard limit %d each)\n", i1.fds, len(harnessFDs), fdLimit())
	fmt.Printf("  heap_per_agent             %.0f KiB heap + %.0f KiB stacks in use\n",
		float64(afterRamp.heap-base.heap)/1024/float64(n), float64(afterRamp.stacks-base.stacks)/1024/float64(n))
	fmt.Printf("  goroutines_per_agent       %.1f  (%d, baseline %d)\n", float64(afterRamp.goroutines-base.goroutines)/float64(n), afterRamp.goroutines, base.goroutines)
	fmt.Printf("  idle_cpu                   %.2f %% of a core (%.2f %% with no agents); %.1f µs per agent per heartbeat interval (heartbeat and tunnel keepalive)\n",
		100*idleCPU.Seconds()/idle.Seconds(), 100*idleBase.Seconds()/idle.Seconds(), float64(agentsIdle.Microseconds())/beats)
	if p.floor > 0 {
		fmt.Printf("  idle_cpu_vs_floor          %.1f× the heartbeat floor\n", float64(agentsIdle.Nanoseconds())/beats/float64(p.floor.Nanoseconds()))
	}
	fmt.Printf("  heartbeat_rpcs_idle        %d Heartbeat RPCs for %.0f beats (the rest rode on tunnel pings)\n", rpcs1-rpcs0, beats)
	fmt.Printf("  getregistrations_p50       %.2f ms\n", ms(regP50))
	fmt.Printf("  lb_p50                     %.3f ms\n", ms(lbP50))
	// The fleet's idle cost (heartbeats, pings) during the run is not the
	// calls': subtract it at the rate measured in the idle window.
	callCPU := c1.cpu - c0.cpu - time.Duration(float64(idleCPU)*float64(c1.at.Sub(c0.at))/float64(idle))
	fmt.Printf("  lb_throughput_c32          %.0f calls/s; server CPU %.3f ms/call (%.3f before subtracting idle)\n", tput,
		ms(callCPU)/float64(ncalls), ms(c1.cpu-c0.cpu)/float64(ncalls))
	fmt.Printf("  harness_cpu                %.3f ms per lb call, %.1f µs per broadcast instance (operator client and all agents: they share the machine with the server)\n",
		ms(h1-h0)/float64(ncalls), float64((hb1-hb0).Microseconds())/float64(bcalls*n))
	fmt.Printf("  lb_syscalls_per_call       %.1f reads + %.1f writes; %.1f context switches per call (server, incl. idle traffic)\n",
		float64(c1.syscr-c0.syscr)/float64(ncalls), float64(c1.syscw-c0.syscw)/float64(ncalls), float64(c1.ctxsw-c0.ctxsw)/float64(ncalls))
	bcastCPU := b1.cpu - b0.cpu - time.Duration(float64(idleCPU)*float64(b1.at.Sub(b0.at))/float64(idle))
	fmt.Printf("  broadcast_p50              %.1f ms (to %d instances); server CPU %.1f µs per instance (%.1f before subtracting idle); %.2f writes, %.2f reads per instance\n",
		ms(bcast), n, float64(bcastCPU.Microseconds())/float64(bcalls*n), float64((b1.cpu-b0.cpu).Microseconds())/float64(bcalls*n),
		float64(b1.syscw-b0.syscw)/float64(bcalls*n), float64(b1.syscr-b0.syscr)/float64(bcalls*n))
	fmt.Printf("  broadcast_failed           %d of %d instance calls\n", bcastFailed.Load(), bcalls*n)
	fmt.Printf("  agents_hit                 %d calls reached the agents; %d tunnel reconnects, %d re-registrations after NOT_FOUND, %d ramp registrations retried\n",
		hits, fleet.reconnects.Load(), fleet.reregistrations.Load(), fleet.registerRetries.Load())
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func agentName(i int) string { return fmt.Sprintf("bench-agent-%05d", i) }
func fnName(i int) string    { return fmt.Sprintf("bench.f%d", i) }

// waitInstances polls until function 0 has n instances.
func waitInstances(ctx context.Context, conn *grpc.ClientConn, n int) error {
	rc := croupierv1.NewRegistryServiceClient(conn)
	deadline := time.Now().Add(time.Minute + time.Duration(n)*20*time.Millisecond)
	for have := 0; ; {
		r, err := rc.GetRegistrations(ctx, &croupierv1.GetRegistrationsRequest{GameId: game, Env: env, FunctionId: fnName(0)})
		if err != nil {
			return err
		}
		if regs := r.GetRegistrations(); len(regs) == 1 {
			if have = len(regs[0].GetAgents()); have >= n {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("registry never reached %d agents (has %d)", n, have)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type caller func(context.Context) error

func p50(ctx context.Context, c caller, n int) (time.Duration, error) {
	d := make([]time.Duration, n)
	for i := range d {
		t0 := time.Now()
		if err := c(ctx); err != nil {
			return 0, err
		}
		d[i] = time.Since(t0)
	}
	slices.Sort(d)
	return d[n/2], nil
}

func throughput(ctx context.Context, c caller, conc int, dur time.Duration) (float64, int64, error) {
	// Calls run on ctx and the loop stops on a timer, so no call is cut
	// short by the end of the run and counted as a failure.
	var stop atomic.Bool
	timer := time.AfterFunc(dur, func() { stop.Store(true) })
	defer timer.Stop()
	var n atomic.Int64
	var first atomic.Pointer[error]
	var wg sync.WaitGroup
	t0 := time.Now()
	for range conc {
		wg.Go(func() {
			for !stop.Load() {
				if err := c(ctx); err != nil {
					first.CompareAndSwap(nil, &err)
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	if p := first.Load(); p != nil {
		return 0, 0, *p
	}
	return float64(n.Load()) / time.Since(t0).Seconds(), n.Load(), nil
}

// server is the croupier server process.
type server struct {
	cmd        *exec.Cmd
	grpc, http string
	done       chan struct{}
	// hc reaches /metrics on the HTTPS listener.
	hc *http.Client
	// pprof is the address of the server's profiling listener, if any.
	pprof string
}

// profiler saves the server's profiles of the run's phases as
// DIR/<prefix>-<phase>.pprof, when -profile is set.
type profiler struct {
	srv         *server
	dir, prefix string
	wg          sync.WaitGroup
}

// cpu starts a CPU profile of the next d, in the background.
func (p *profiler) cpu(phase string, d time.Duration) {
	if p.dir == "" {
		return
	}
	p.wg.Go(func() {
		p.fetch(phase, fmt.Sprintf("profile?seconds=%d", max(1, int(d.Round(time.Second)/time.Second))))
	})
}

// snapshot saves one of the runtime's cumulative profiles (heap, mutex, block).
func (p *profiler) snapshot(phase, kind string) {
	if p.dir != "" {
		p.fetch(phase, kind)
	}
}

func (p *profiler) wait() { p.wg.Wait() }

func (p *profiler) fetch(phase, path string) {
	if err := profile.Fetch(p.srv.pprof, path, filepath.Join(p.dir, p.prefix+"-"+phase+".pprof")); err != nil {
		fmt.Fprintf(os.Stderr, "scale: profile %s: %v\n", phase, err)
	}
}

func startServer(ctx context.Context, bin, dir string, pprof bool) (*server, error) {
	cmd := exec.CommandContext(ctx, bin, "server", "--data-dir", dir, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--tunnel-http-addr", "", "--scopes", game+"/"+env, "--rate-user", "0", "--rate-function", "0",
		"--admin-user", certs.DevClientName, "--heartbeat-interval", heartbeat.String(), "--log-format", "json", "--log-level", "info")
	cmd.Env = append(os.Environ(), "CROUPIER_ADMIN_PASSWORD=bench-password-1")
	var pprofAddr string
	if pprof {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		pprofAddr = ln.Addr().String()
		_ = ln.Close()
		cmd.Env = append(cmd.Env, "CROUPIER_PPROF_ADDR="+pprofAddr)
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, done: make(chan struct{}), pprof: pprofAddr}
	addrs := make(chan [2]string, 1)
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var line struct{ Msg, GRPC, HTTP string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "croupier server started" {
				addrs <- [2]string{line.GRPC, line.HTTP}
			} else if strings.Contains(sc.Text(), `"level":"ERROR"`) {
				fmt.Fprintln(os.Stderr, "server:", sc.Text())
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	select {
	case a := <-addrs:
		s.grpc, s.http = a[0], a[1]
		return s, nil
	case <-s.done:
		_ = cmd.Wait()
		return nil, errors.New("server exited before it started")
	case <-time.After(30 * time.Second):
		s.stop()
		return nil, errors.New("server did not start in 30s")
	}
}

func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	_ = s.cmd.Wait()
}

type sample struct {
	at         time.Time
	cpu        time.Duration
	rss        int64
	goroutines int
	// heap and stacks are the Go runtime's in-use bytes: what the agents
	// hold, without the collector's headroom that RSS includes.
	heap, stacks int64
	// syscr and syscw count the process's read and write system calls
	// (/proc/PID/io); ctxsw its threads' context switches; fds its open files.
	syscr, syscw, ctxsw int64
	fds                 int
}

// selfCPU is the harness process's CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func fdLimit() uint64 {
	var l syscall.Rlimit
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
	return l.Max
}

// sample reads the server's CPU time and RSS from /proc and its goroutine
// count from /metrics.
func (s *server) sample() sample {
	out := sample{at: time.Now()}
	pid := s.cmd.Process.Pid
	out.cpu, _ = procCPU(pid)
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				out.rss = kb * 1024
			}
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid)); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(l, ": ")
			n, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "syscr":
				out.syscr = n
			case "syscw":
				out.syscw = n
			}
		}
	}
	if tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid)); err == nil {
		for _, t := range tasks {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, t.Name()))
			for _, l := range strings.Split(string(b), "\n") {
				if k, v, ok := strings.Cut(l, ":"); ok && strings.HasSuffix(k, "ctxt_switches") {
					n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
					out.ctxsw += n
				}
			}
		}
	}
	if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		out.fds = len(fds)
	}
	if resp, err := s.hc.Get("https://" + s.http + "/metrics"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		for _, l := range strings.Split(string(b), "\n") {
			name, v, _ := strings.Cut(l, " ")
			f, _ := strconv.ParseFloat(v, 64)
			switch name {
			case "go_goroutines":
				out.goroutines = int(f)
			case "go_memstats_heap_inuse_bytes":
				out.heap = int64(f)
			case "go_memstats_stack_inuse_bytes":
				out.stacks = int64(f)
			}
		}
	}
	return out
}

// fleet is the harness's agents.
type fleet struct {
	roots     *x509.CertPool
	addr      string
	transport string // "conn" or "grpc"

	// reconnects and reregistrations count agents the server dropped
	// (tunnel reconnects, heartbeats answered NOT_FOUND): signs of overload.
	reconnects, reregistrations atomic.Int64
	// registerRetries counts ramp registrations refused because the tunnel
	// had dropped since it connected.
	registerRetries atomic.Int64
	// heartbeatRPCs counts Heartbeat RPCs: beats the tunnel ping did not
	// carry.
	heartbeatRPCs atomic.Int64

	mu     sync.Mutex
	agents []*agent
}

// close stops every agent, 64 at a time (one by one, 10,000 agents took
// minutes), and gives up waiting after a minute so that a stuck agent cannot
// hang the harness.
func (f *fleet) close() {
	f.mu.Lock()
	agents := f.agents
	f.agents = nil
	f.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 64)
		for _, a := range agents {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				a.close()
			})
		}
		wg.Wait()
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		fmt.Fprintln(os.Stderr, "scale: some agents did not stop within a minute; leaving them")
	}
}

// agent is one benchmark agent: its own connection, tunnel and heartbeat.
type agent struct {
	id      string
	conn    *grpc.ClientConn
	control croupierv1.ControlServiceClient
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	calls   atomic.Int64
	// connects counts tunnel connections; live is set once registered.
	connects atomic.Int64
	live     atomic.Bool
	// client is the agent's tunnel; beatAt is when the server last counted
	// its ping as the heartbeat (unix ns), as in croupier agent.
	client *tunnel.Client
	beatAt atomic.Int64
}

func dialTLS(addr string, roots *x509.CertPool, cert tls.Certificate) (*grpc.ClientConn, error) {
	cfg := &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, ServerName: "localhost", MinVersion: tls.VersionTLS13}
	return grpc.NewClient(addr, append(tunnel.GRPCDialOptions(), grpc.WithTransportCredentials(credentials.NewTLS(cfg)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}))...)
}

// connect opens agent i's tunnel and returns once it is connected.
func (f *fleet) connect(ctx context.Context, i int, cert tls.Certificate) (*agent, error) {
	conn, err := dialTLS(f.addr, f.roots, cert)
	if err != nil {
		return nil, err
	}
	actx, cancel := context.WithCancel(ctx)
	a := &agent{id: agentName(i), conn: conn, control: croupierv1.NewControlServiceClient(conn), cancel: cancel}
	handlers := tunnel.NewHandlerRegistry()
	// Raw, like croupier agent's relay: the harness's agents share the
	// cores with the server, so they do no more work than a real agent.
	if err := tunnel.RegisterRaw(handlers, invokeRequestName, func(_ context.Context, req *anypb.Any) (*anypb.Any, error) {
		a.calls.Add(1)
		return answerInvoke(req.GetValue()), nil
	}); err != nil {
		cancel()
		_ = conn.Close()
		return nil, err
	}
	connected := make(chan struct{}, 1)
	opts := tunnel.ClientOptions{
		Name: a.id, Handlers: handlers, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		PingInterval: heartbeat, PingTimeout: 10 * heartbeat,
		OnHeartbeat: func(int64) { a.beatAt.Store(time.Now().UnixNano()) },
		OnConnected: func(cctx context.Context) {
			select {
			case connected <- struct{}{}:
			default:
			}
			// A reconnect makes the server forget the agent: register again,
			// as croupier agent does.
			if a.connects.Add(1) > 1 && a.live.Load() {
				f.reconnects.Add(1)
				_, _ = a.register(cctx, "gs-1")
			}
		},
	}
	// As croupier agent: the conn transport is a second connection, to the
	// gRPC port, with the agent's certificate and the tunnel's ALPN.
	var client *tunnel.Client
	if f.transport == "conn" {
		d := tls.Dialer{Config: &tls.Config{RootCAs: f.roots, Certificates: []tls.Certificate{cert}, ServerName: "localhost",
			MinVersion: tls.VersionTLS13, NextProtos: []string{tunnel.ConnALPN}}}
		client = tunnel.NewConnClient(func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", f.addr) }, opts)
	} else {
		client = tunnel.NewGRPCClient(conn, opts)
	}
	a.client = client
	a.wg.Go(func() { _ = client.Run(actx) })
	select {
	case <-connected:
	case <-time.After(time.Minute):
		a.close()
		return nil, fmt.Errorf("agent %s: tunnel did not connect", a.id)
	}
	f.mu.Lock()
	f.agents = append(f.agents, a)
	f.mu.Unlock()
	return a, nil
}

// start connects agent i, registers it once and starts its heartbeats. It
// returns the RegisterAgent latency.
func (f *fleet) start(ctx context.Context, i int, cert tls.Certificate) (time.Duration, error) {
	a, err := f.connect(ctx, i, cert)
	if err != nil {
		return 0, err
	}
	// On an overloaded machine a tunnel can drop between connecting and
	// registering; like croupier agent, register again once it is back
	// (counted: a sign of overload), up to 10 times.
	d, err := a.register(ctx, "gs-1")
	for try := 0; err != nil && status.Code(errors.Unwrap(err)) == codes.FailedPrecondition && try < 10; try++ {
		f.registerRetries.Add(1)
		time.Sleep(time.Second)
		d, err = a.register(ctx, "gs-1")
	}
	if err != nil {
		return 0, err
	}
	a.live.Store(true)
	actx, cancel := context.WithCancel(ctx)
	prev := a.cancel
	a.cancel = func() { cancel(); prev() }
	a.wg.Go(func() {
		// As croupier agent: the tunnel ping is the heartbeat; the
		// Heartbeat RPC only follows a ping the server did not count (a
		// server older than that, like the baseline, or one that forgot
		// the agent).
		t := time.NewTicker(heartbeat)
		defer t.Stop()
		lastTick := time.Now()
		a.client.Ping()
		for {
			select {
			case <-actx.Done():
				return
			case now := <-t.C:
				if a.beatAt.Load() < lastTick.UnixNano() {
					f.heartbeatRPCs.Add(1)
					_, err := a.control.Heartbeat(actx, &croupierv1.HeartbeatRequest{AgentId: a.id, Timestamp: time.Now().UnixMilli()})
					if status.Code(err) == codes.NotFound {
						f.reregistrations.Add(1)
						_, _ = a.register(actx, "gs-1")
					}
				}
				lastTick = now
				a.client.Ping()
			}
		}
	})
	return d, nil
}

var descriptors = func() []*croupierv1.FunctionDescriptor {
	var out []*croupierv1.FunctionDescriptor
	for i := range functions {
		schema, _ := structpb.NewStruct(map[string]any{
			"type": "object", "properties": map[string]any{"player_id": map[string]any{"type": "string", "maxLength": 64}},
		})
		out = append(out, &croupierv1.FunctionDescriptor{Id: fnName(i), Name: fnName(i), Version: "1", ParamsSchema: schema})
	}
	return out
}()

func (a *agent) register(ctx context.Context, instance string) (time.Duration, error) {
	fns := make([]string, functions)
	for i := range fns {
		fns[i] = fnName(i)
	}
	t0 := time.Now()
	_, err := a.control.RegisterAgent(ctx, &croupierv1.RegisterAgentRequest{
		AgentId: a.id, GameId: game, Env: env, Version: "bench", Functions: fns, Descriptors: descriptors,
		Instances: []*croupierv1.InstanceInfo{{InstanceId: instance, Functions: fns, Incarnation: "1"}},
	})
	if err != nil {
		return 0, fmt.Errorf("agent %s: RegisterAgent: %w", a.id, err)
	}
	return time.Since(t0), nil
}

var (
	invokeRequestName = (&agentv1.InvokeRequest{}).ProtoReflect().Descriptor().FullName()
	invokeResponseURL = "type.googleapis.com/" + string((&agentv1.InvokeResponse{}).ProtoReflect().Descriptor().FullName())
	// okResponse is InvokeResponse{success: true, result: {"ok": true}}
	// encoded once; answerInvoke appends the instance id.
	okResponse, _ = proto.Marshal(&agentv1.InvokeResponse{Success: true,
		Result: &structpb.Struct{Fields: map[string]*structpb.Value{"ok": structpb.NewBoolValue(true)}}})
)

// instanceIDField is the field number of instance_id in InvokeRequest and
// InvokeResponse.
const instanceIDField protowire.Number = 5

// answerInvoke answers an encoded InvokeRequest with okResponse for its
// instance.
func answerInvoke(req []byte) *anypb.Any {
	out := append(make([]byte, 0, len(okResponse)+32), okResponse...)
	for len(req) > 0 {
		num, typ, n := protowire.ConsumeTag(req)
		if n < 0 {
			break
		}
		m := protowire.ConsumeFieldValue(num, typ, req[n:])
		if m < 0 {
			break
		}
		if num == instanceIDField && typ == protowire.BytesType {
			id, _ := protowire.ConsumeBytes(req[n:])
			out = protowire.AppendBytes(protowire.AppendTag(out, instanceIDField, protowire.BytesType), id)
		}
		req = req[n+m:]
	}
	return &anypb.Any{TypeUrl: invokeResponseURL, Value: out}
}

func (a *agent) close() {
	a.cancel()
	a.wg.Wait()
	_ = a.conn.Close()
}
