// Command invoke benchmarks end-to-end InvokeFunction — client → server →
// agent → SDK handler → back over loopback (mTLS to the server and between
// server and agent) — against a direct call to the same handler with the
// same TLS.
//
//	go run ./bench/invoke [-mode grpc|rest|both] [-n 3000] [-duration 5s] [-concurrency 64] [-floor]
//
// Mode grpc calls FunctionService.InvokeFunction and compares it with the
// handler served as a plain unary gRPC method; mode rest calls
// POST /api/v1/functions/{id}:invoke (JSON over HTTPS, HTTP/2) and compares
// it with the handler served as a plain JSON-over-HTTPS endpoint. For each
// mode it prints p50/p99 latency at concurrency 1 and throughput at the
// given concurrency for both paths, then the ratios, one per line. The
// server runs with its rate limits off (see stack.Start). With -floor, the
// grpc mode also measures the relay floor, without and with an audit row
// per call (floor.go): the least a call through server and agent costs
// with this tunnel.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	agentv1 "github.com/croupier/croupier/api/croupier/agent/v1"
	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/bench/internal/stack"
	"github.com/croupier/croupier/examples/demogame"
	"github.com/croupier/croupier/internal/certs"
	"github.com/croupier/croupier/internal/tlsconf"
	"github.com/croupier/croupier/sdk"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/structpb"
)

func main() {
	n := flag.Int("n", 3000, "sequential calls for the latency measurement")
	dur := flag.Duration("duration", 5*time.Second, "length of each throughput run")
	conc := flag.Int("concurrency", 64, "concurrent callers for the throughput run")
	rounds := flag.Int("rounds", 5, "split each path's throughput run into this many runs, the paths taking turns (so that the machine's drift touches them alike); a profile makes it 1, so that the profile covers its path's run only")
	mode := flag.String("mode", "both", "what to measure: grpc, rest or both")
	withFloor := flag.Bool("floor", false, "grpc mode: also measure the relay floor (the hops of a call through server and agent, nothing else; see floor.go)")
	floorProfile := flag.String("floorprofile", "", "with -floor: write a CPU profile of the floor's throughput run to this file")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of croupier's throughput run (not the direct one, not the setup) to this file")
	directProfile := flag.String("directprofile", "", "write a CPU profile of the direct baseline's throughput run to this file (compare: go tool pprof -diff_base FILE CROUPIER_PROFILE)")
	sdkStream := flag.Bool("sdk-stream", false, "the game server reaches the agent over a gRPC stream (the SDK's StreamTransport, as before the conn transport) instead of the conn transport; the floor's game hop too")
	agentTransport := flag.String("agent-transport", "auto", "the agent's tunnel to the server: auto (the agent's default: the conn transport here), grpc (a gRPC stream) or conn (the conn transport over TLS on the gRPC port); the floor's server hop too")
	memprofile := flag.String("memprofile", "", "write an allocation profile of croupier's throughput run to this file (compare it with FILE.base: go tool pprof -sample_index alloc_objects -base FILE.base FILE)")
	flag.Parse()
	if *memprofile != "" {
		runtime.MemProfileRate = 4096
	}
	if *mode != "grpc" && *mode != "rest" && *mode != "both" {
		fmt.Fprintf(os.Stderr, "bench: -mode must be grpc, rest or both, got %q\n", *mode)
		os.Exit(2)
	}
	if *withFloor && *mode == "rest" {
		fmt.Fprintln(os.Stderr, "bench: -floor measures the grpc mode's floor; use -mode grpc or both")
		os.Exit(2)
	}
	if *floorProfile != "" && !*withFloor {
		fmt.Fprintln(os.Stderr, "bench: -floorprofile needs -floor")
		os.Exit(2)
	}
	if (*cpuprofile != "" || *memprofile != "" || *directProfile != "") && *mode == "both" {
		fmt.Fprintln(os.Stderr, "bench: -cpuprofile, -directprofile and -memprofile need -mode grpc or -mode rest")
		os.Exit(2)
	}
	if *agentTransport != "auto" && *agentTransport != "grpc" && *agentTransport != "conn" {
		fmt.Fprintf(os.Stderr, "-agent-transport %q: use auto, grpc or conn\n", *agentTransport)
		os.Exit(2)
	}
	if *rounds < 1 {
		fmt.Fprintf(os.Stderr, "bench: -rounds must be at least 1, got %d\n", *rounds)
		os.Exit(2)
	}
	if *dur/time.Duration(*rounds) < 50*time.Millisecond {
		fmt.Fprintf(os.Stderr, "bench: -duration %v in %d rounds leaves %v per run; each run needs at least 50ms\n", *dur, *rounds, *dur/time.Duration(*rounds))
		os.Exit(2)
	}
	prof := profiles{cpu: *cpuprofile, mem: *memprofile, floorCPU: *floorProfile, directCPU: *directProfile}
	hops := hops{sdkStream: *sdkStream, agentTransport: *agentTransport}
	if err := run(*mode, *n, *dur, *conc, *rounds, *withFloor, hops, prof); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// caller makes one call and reports an error if it failed.
type caller func(ctx context.Context) error

// Goals of issue 9, against the direct call measured in the same run.
const (
	goalP50Ratio        = 3.0
	goalThroughputRatio = 0.5
)

// profiles names the files for the profiles of croupier's throughput run
// (cpu, mem), of the direct baseline's (directCPU) and of the floor's
// (floorCPU), "" for none: only that run, so
// that their samples divide by its calls.
type profiles struct{ cpu, mem, floorCPU, directCPU string }

// hops are the transports of a call's two tunnel hops.
type hops struct {
	sdkStream      bool   // game server ↔ agent on a gRPC stream, not the conn transport
	agentTransport string // agent ↔ server: "auto" or "" (the agent's default), "grpc" or "conn"
}

func run(mode string, n int, dur time.Duration, conc, rounds int, withFloor bool, hops hops, prof profiles) error {
	ctx := context.Background()
	game := demogame.New("bench-1", 100)
	st, err := stack.Start(func(c *sdk.Client) error { return game.Register(c) }, "player.get",
		stack.Options{AgentTransport: hops.agentTransport, SDK: func(o *sdk.Options) { o.StreamTransport = hops.sdkStream }})
	if err != nil {
		return err
	}
	defer st.Close()
	bundle := st.Bundle
	handler := sdk.Func(game.Get)
	payload, _ := structpb.NewStruct(map[string]any{"player_id": "p42"})

	if mode == "grpc" || mode == "both" {
		viaCroupier, direct, stop, err := grpcCallers(st, bundle, handler, payload)
		if err != nil {
			return err
		}
		var floors []named
		if withFloor {
			for _, fl := range []struct {
				name    string
				audited bool
			}{{"floor", false}, {"floor_audit", true}} {
				f, stopFloor, err := floorCaller(bundle, handler, payload, fl.audited, hops)
				if err != nil {
					stop()
					return err
				}
				defer stopFloor()
				floors = append(floors, named{name: fl.name, call: f})
			}
		}
		err = compare(ctx, "grpc", viaCroupier, direct, floors, n, dur, conc, rounds, prof)
		stop()
		if err != nil {
			return err
		}
	}
	if mode == "rest" || mode == "both" {
		viaCroupier, direct, stop, err := restCallers(st, bundle, handler)
		if err != nil {
			return err
		}
		err = compare(ctx, "rest", viaCroupier, direct, nil, n, dur, conc, rounds, prof)
		stop()
		if err != nil {
			return err
		}
	}
	return nil
}

// named is a caller measured besides croupier and direct (the floors).
type named struct {
	name string
	call caller
}

// compare measures both callers, then the floors, and prints the results
// and ratios, the ratio lines prefixed with the mode ("grpc_invoke_p50_ratio
// ...").
func compare(ctx context.Context, mode string, viaCroupier, direct caller, floors []named, n int, dur time.Duration, conc, rounds int, prof profiles) error {
	warm := []caller{viaCroupier, direct}
	for _, f := range floors {
		warm = append(warm, f.call)
	}
	for _, c := range warm { // warm up connections and caches
		for i := 0; i < 200; i++ {
			if err := c(ctx); err != nil {
				return fmt.Errorf("%s warm-up: %w", mode, err)
			}
		}
	}
	// Latency: the paths take turns (see latencies).
	paths := append([]named{{"direct", direct}, {"croupier", viaCroupier}}, floors...)
	p50s, p99s, err := latencies(ctx, paths, n)
	if err != nil {
		return fmt.Errorf("%s latency: %w", mode, err)
	}
	dP50, dP99, cP50, cP99 := p50s[0], p99s[0], p50s[1], p99s[1]
	// Throughput, the paths taking turns as in latencies; a profile covers
	// its path's run, so with one there is one round.
	if prof != (profiles{}) {
		rounds = 1
	}
	hooks := make([]hook, len(paths))
	hooks[0] = profileHook(prof.directCPU)
	cpuHook := profileHook(prof.cpu)
	hooks[1] = hook{
		before: func() error {
			if err := writeAllocs(prof.mem, ".base"); err != nil {
				return err
			}
			return cpuHook.before()
		},
		after: func() error {
			if err := cpuHook.after(); err != nil {
				return err
			}
			return writeAllocs(prof.mem, "")
		},
	}
	if len(floors) > 0 {
		hooks[2] = profileHook(prof.floorCPU)
	}
	rates, err := throughputs(ctx, paths, hooks, conc, dur, rounds)
	if err != nil {
		return fmt.Errorf("%s throughput: %w", mode, err)
	}
	d, c := rates[0], rates[1]
	fmt.Printf("%-4s direct    latency c=1: p50 %v p99 %v   throughput c=%d: %.0f calls/s, CPU %v/call, %.0f allocs/call (%.1f KiB)\n", mode, dP50, dP99, conc, d.perSec, d.cpu, d.allocs, d.allocBytes/1024)
	fmt.Printf("%-4s croupier  latency c=1: p50 %v p99 %v   throughput c=%d: %.0f calls/s, CPU %v/call, %.0f allocs/call (%.1f KiB)\n", mode, cP50, cP99, conc, c.perSec, c.cpu, c.allocs, c.allocBytes/1024)
	fmt.Printf("%s_invoke_p50_ratio %.2f (goal <= %.2f)\n", mode, float64(cP50)/float64(dP50), goalP50Ratio)
	fmt.Printf("%s_invoke_p99_ratio %.2f\n", mode, float64(cP99)/float64(dP99))
	fmt.Printf("%s_invoke_throughput_ratio %.2f (goal >= %.2f)\n", mode, c.perSec/d.perSec, goalThroughputRatio)
	fmt.Printf("%s_invoke_cpu_ratio %.2f\n", mode, float64(c.cpu)/float64(d.cpu))
	for i, fl := range floors {
		fP50, fP99, f := p50s[2+i], p99s[2+i], rates[2+i]
		fmt.Printf("%-4s %-11s latency c=1: p50 %v p99 %v   throughput c=%d: %.0f calls/s, CPU %v/call, %.0f allocs/call (%.1f KiB)\n", mode, fl.name, fP50, fP99, conc, f.perSec, f.cpu, f.allocs, f.allocBytes/1024)
		fmt.Printf("%s_%s_p50_ratio %.2f\n", mode, fl.name, float64(fP50)/float64(dP50))
		fmt.Printf("%s_%s_throughput_ratio %.2f\n", mode, fl.name, f.perSec/d.perSec)
		fmt.Printf("%s_%s_cpu_ratio %.2f\n", mode, fl.name, float64(f.cpu)/float64(d.cpu))
		fmt.Printf("%s_%s_cpu_gap %v (croupier's CPU per call minus this)\n", mode, fl.name, c.cpu-f.cpu)
	}
	return nil
}

// hook runs before and after each of a path's throughput runs (nil: nothing).
type hook struct{ before, after func() error }

// profileHook writes a CPU profile of the path's run to path ("" for none).
func profileHook(path string) hook {
	var stop func() error
	return hook{
		before: func() (err error) { stop, err = startProfile(path); return err },
		after:  func() error { return stop() },
	}
}

// grpcCallers returns InvokeFunction over the stack's operator connection
// and the same handler served as a plain unary gRPC method with mTLS.
func grpcCallers(st *stack.Stack, bundle *certs.Bundle, handler sdk.Handler, payload *structpb.Struct) (viaCroupier, direct caller, stop func(), err error) {
	fc := croupierv1.NewFunctionServiceClient(st.Conn)
	viaCroupier = func(ctx context.Context) error {
		r, err := fc.InvokeFunction(ctx, &croupierv1.InvokeFunctionRequest{GameId: "demo", Env: "dev", FunctionId: "player.get", Payload: payload})
		if err == nil && !r.GetSuccess() {
			err = fmt.Errorf("%s: %s", r.GetErrorCode(), r.GetError())
		}
		return err
	}
	ctls, err := tlsconf.ClientConfig(bundle.CACert, bundle.ClientCert, bundle.ClientKey, "localhost")
	if err != nil {
		return nil, nil, nil, err
	}
	directAddr, stopDirect, err := serveDirect(bundle, handler)
	if err != nil {
		return nil, nil, nil, err
	}
	dconn, err := grpc.NewClient(directAddr, grpc.WithTransportCredentials(credentials.NewTLS(ctls)))
	if err != nil {
		stopDirect()
		return nil, nil, nil, err
	}
	direct = func(ctx context.Context) error {
		out := &agentv1.InvokeResponse{}
		return dconn.Invoke(ctx, "/croupier.bench.Direct/Invoke", &agentv1.InvokeRequest{FunctionId: "player.get", Payload: payload}, out)
	}
	return viaCroupier, direct, func() { _ = dconn.Close(); stopDirect() }, nil
}

// startProfile starts a CPU profile into the file at path (none if path is
// empty); the returned function stops it and closes the file.
func startProfile(path string) (stop func() error, err error) {
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	return func() error { pprof.StopCPUProfile(); return f.Close() }, nil
}

// writeAllocs writes the allocation profile so far to path+suffix (nothing
// if path is empty).
func writeAllocs(path, suffix string) error {
	if path == "" {
		return nil
	}
	f, err := os.Create(path + suffix)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// latencyBlock is how many measured calls of one path run in a row, each
// block after latencyBlockWarm calls of the same path that are not measured
// (they let the previous path's background work — its audit flush, its
// garbage — settle).
const latencyBlock, latencyBlockWarm = 100, 20

// latencies makes n sequential calls of each path and returns each path's
// p50 and p99. The paths take turns in blocks of latencyBlock calls, so
// every path's percentiles come from the same stretch of time: measured
// one path after the other, a machine that slows down or speeds up between
// them (this VM's single-call latency drifts by half from minute to
// minute) shows up as a ratio.
func latencies(ctx context.Context, paths []named, n int) (p50, p99 []time.Duration, err error) {
	d := make([][]time.Duration, len(paths))
	for i := range d {
		d[i] = make([]time.Duration, 0, n)
	}
	for len(d[0]) < n {
		for i, p := range paths {
			block := min(latencyBlock, n-len(d[i]))
			for j := range latencyBlockWarm + block {
				t0 := time.Now()
				if err := p.call(ctx); err != nil {
					return nil, nil, fmt.Errorf("%s: %w", p.name, err)
				}
				if j >= latencyBlockWarm {
					d[i] = append(d[i], time.Since(t0))
				}
			}
		}
	}
	for _, di := range d {
		slices.Sort(di)
		p50, p99 = append(p50, di[n/2]), append(p99, di[n*99/100])
	}
	return p50, p99, nil
}

// rate is what a throughput run measured.
type rate struct {
	perSec float64
	// cpu is the CPU time (user + system, of this whole process: client,
	// server, agent and game server) spent per call, which other load on
	// the machine inflates far less than wall-clock numbers.
	cpu time.Duration
	// allocs is the heap allocations per call, of the whole process.
	allocs float64
	// allocBytes is the bytes allocated on the heap per call, of the whole
	// process: what the garbage collector has to keep up with.
	allocBytes float64
}

// throughputs runs each path with conc callers for dur in all, in rounds
// runs of dur/rounds each, the paths taking turns, and measures them: this
// VM's speed drifts by a third from one minute to the next, and measured
// one after the other (one round) the paths' ratio moved with it — from
// 0.43 to 0.62 in six runs of the same build, 2026-12-03. hooks[i] runs
// around each of path i's runs.
func throughputs(ctx context.Context, paths []named, hooks []hook, conc int, dur time.Duration, rounds int) ([]rate, error) {
	sums := make([]tally, len(paths))
	for range rounds {
		for i, p := range paths {
			h := hooks[i]
			if h.before != nil {
				if err := h.before(); err != nil {
					return nil, err
				}
			}
			t, err := throughput(ctx, p.call, conc, dur/time.Duration(rounds))
			if h.after != nil {
				if herr := h.after(); err == nil {
					err = herr
				}
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p.name, err)
			}
			sums[i].add(t)
		}
	}
	rates := make([]rate, len(paths))
	for i, t := range sums {
		rates[i] = t.rate()
	}
	return rates, nil
}

// tally is what throughput runs counted.
type tally struct {
	calls          int64
	elapsed, cpu   time.Duration
	mallocs, bytes uint64
}

func (t *tally) add(u tally) {
	t.calls += u.calls
	t.elapsed += u.elapsed
	t.cpu += u.cpu
	t.mallocs += u.mallocs
	t.bytes += u.bytes
}

func (t tally) rate() rate {
	if t.calls == 0 {
		return rate{}
	}
	n := float64(t.calls)
	return rate{perSec: n / t.elapsed.Seconds(), cpu: t.cpu / time.Duration(t.calls),
		allocs: float64(t.mallocs) / n, allocBytes: float64(t.bytes) / n}
}

// throughput runs conc callers for dur and counts what they did.
func throughput(ctx context.Context, c caller, conc int, dur time.Duration) (tally, error) {
	ctx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	var calls atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mallocs0, bytes0 := ms.Mallocs, ms.TotalAlloc
	cpu0 := processCPU()
	start := time.Now()
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				// Each call gets its own deadline well past the run's end, so
				// a call cut off by the end of the run is not an error.
				cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dur+10*time.Second)
				err := c(cctx)
				cancel()
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				calls.Add(1)
			}
		}()
	}
	wg.Wait()
	t := tally{calls: calls.Load(), elapsed: time.Since(start), cpu: processCPU() - cpu0}
	runtime.ReadMemStats(&ms)
	t.mallocs, t.bytes = ms.Mallocs-mallocs0, ms.TotalAlloc-bytes0
	return t, firstErr
}

// processCPU is the user + system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// serveDirect serves handler as a unary gRPC method with mTLS.
func serveDirect(b *certs.Bundle, handler sdk.Handler) (string, func(), error) {
	stls, err := tlsconf.ServerConfig(b.CACert, b.ServerCert, b.ServerKey, true)
	if err != nil {
		return "", nil, err
	}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(stls.Clone())))
	gs.RegisterService(invokeService("croupier.bench.Direct", func(ctx context.Context, req *agentv1.InvokeRequest) (*agentv1.InvokeResponse, error) {
		return runHandler(ctx, handler, req), nil
	}), struct{}{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	go func() { _ = gs.Serve(l) }()
	return l.Addr().String(), gs.Stop, nil
}
