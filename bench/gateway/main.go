// Command gateway benchmarks `croupier gateway` as a separate process:
// (a) resident memory per idle WebSocket connection, (b) broadcast and
// topic fan-out of 64-byte messages (delivered messages/s and gateway CPU
// time per delivered message), (c) delivery latency percentiles.
//
//	go run ./bench/gateway [-bin bin/croupier] [-idle 10000,50000] [-fanout 10000] [-messages 200]
//
// The harness raises its open-file limit as far as the hard limit allows
// (the gateway inherits it) and skips idle counts that do not fit. Gateway CPU is read from
// /proc/<pid>/stat (utime+stime), memory from /proc/<pid>/status (VmRSS).
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/croupier/croupier/api/netsvr"
	"github.com/croupier/croupier/sdk/gateway"
)

func main() {
	bin := flag.String("bin", "bin/croupier", "croupier binary (make build)")
	idle := flag.String("idle", "10000,50000", "idle connection counts for the memory measurement")
	fanout := flag.Int("fanout", 10000, "connections for the fan-out measurement")
	messages := flag.Int("messages", 200, "64-byte messages per fan-out run")
	floorServeN := flag.Int("floor-serve", 0, "internal: run as the floor measurement's writer process for this many connections")
	reader := flag.String("reader", "epoll", "how the harness reads its WebSockets: epoll (2 goroutines on epoll sets) or goroutines (one blocked goroutine per connection)")
	flag.Parse()
	if *floorServeN > 0 {
		if err := floorServe(*floorServeN); err != nil {
			fmt.Fprintln(os.Stderr, "bench/gateway:", err)
			os.Exit(1)
		}
		return
	}
	if *reader != "epoll" && *reader != "goroutines" {
		fmt.Fprintln(os.Stderr, "bench/gateway: -reader is epoll or goroutines")
		os.Exit(2)
	}
	readerMode = *reader
	if err := run(*bin, *idle, *fanout, *messages); err != nil {
		fmt.Fprintln(os.Stderr, "bench/gateway:", err)
		os.Exit(1)
	}
}

// readerMode is the -reader flag.
var readerMode string

func run(bin, idleList string, fanout, messages int) error {
	var lim syscall.Rlimit
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	want := uint64(220000)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: want, Max: want}); err != nil {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	fmt.Printf("open-file limit %d\n", lim.Cur)

	for _, s := range strings.Split(idleList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			continue
		}
		if uint64(n)+1000 > lim.Cur {
			fmt.Printf("idle %d: skipped, open-file limit %d is too low\n", n, lim.Cur)
			continue
		}
		if err := idleMemory(bin, n); err != nil {
			return fmt.Errorf("idle %d: %w", n, err)
		}
	}
	if fanout > 0 {
		if err := fanOut(bin, fanout, messages); err != nil {
			return err
		}
		// The floor, measured in the same run: the same paced load
		// written by the harness itself, without a gateway.
		return floor(fanout, messages/5, 200*time.Millisecond)
	}
	return nil
}

type proc struct {
	cmd         *exec.Cmd
	client, biz string
	pid         int
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startGateway(bin string, extra ...string) (*proc, error) {
	p := &proc{client: freeAddr(), biz: freeAddr()}
	args := append([]string{"gateway", "--client-addr", p.client, "--business-addr", p.biz,
		"--max-online", "200000", "--read-deadline", "30m", "--conn-open-worker-id", "1", "--connect-rate-per-ip", "0", "--log-level", "error",
		"--rooms-addr="}, extra...) // the rooms listener is not measured here (bench/rooms)
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stderr = os.Stderr
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	p.pid = p.cmd.Process.Pid
	for i := 0; i < 200; i++ {
		if c, err := net.Dial("tcp", p.biz); err == nil {
			c.Close()
			return p, nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	p.stop()
	return nil, errors.New("gateway did not start")
}

func (p *proc) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

func (p *proc) rssKB() int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid))
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

// cpu returns the gateway's user+system CPU time.
func (p *proc) cpu() time.Duration {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid))
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// business connects the SDK as workerId 1 and collects ConnOpen uniqIds.
func business(ctx context.Context, p *proc, opened chan<- string) (*gateway.Client, error) {
	c, err := gateway.New(gateway.Config{Addr: p.biz, WorkerID: 1, ServerID: 1,
		OnConnOpen: func(m *netsvr.ConnOpen) {
			if opened != nil {
				opened <- m.UniqId
			}
		}})
	if err != nil {
		return nil, err
	}
	go func() { _ = c.Run(ctx) }()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return c, c.WaitReady(wctx)
}

// dial opens n WebSockets, 256 at a time.
func dial(addr string, n int) ([]*wsConn, error) {
	out := make([]*wsConn, n)
	var firstErr error
	var mu sync.Mutex
	sem := make(chan struct{}, 256)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := dialWS(addr)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			out[i] = c
		}(i)
	}
	wg.Wait()
	return out, firstErr
}

type wsConn struct {
	conn net.Conn
	r    *bufio.Reader
}

func dialWS(addr string) (*wsConn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	var k [16]byte
	_, _ = rand.Read(k[:])
	fmt.Fprintf(conn, "GET /netsvr HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", addr, base64.StdEncoding.EncodeToString(k[:]))
	r := bufio.NewReaderSize(conn, 4096)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		conn.Close()
		return nil, fmt.Errorf("upgrade: HTTP %d", resp.StatusCode)
	}
	return &wsConn{conn: conn, r: r}, nil
}

func closeAll(cs []*wsConn) {
	for _, c := range cs {
		if c != nil {
			c.conn.Close()
		}
	}
}

func idleMemory(bin string, n int) error {
	p, err := startGateway(bin)
	if err != nil {
		return err
	}
	defer p.stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opened := make(chan string, n)
	if _, err := business(ctx, p, opened); err != nil {
		return err
	}
	time.Sleep(time.Second)
	before := p.rssKB()
	cs, err := dial(p.client, n)
	defer closeAll(cs)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		<-opened
	}
	time.Sleep(2 * time.Second) // let the gateway settle before reading RSS
	after := p.rssKB()
	fmt.Printf("idle %d connections: gateway RSS %d KB -> %d KB, %.2f KB per connection (goal <= 3 KB; netsvr ~4 KB)\n",
		n, before, after, float64(after-before)/float64(n))
	// The gateway closes first, so TIME_WAIT stays on its side and the
	// client side's ephemeral ports are free for the next run.
	p.stop()
	return nil
}

// fanOut measures broadcast and topic delivery to n connections.
func fanOut(bin string, n, messages int) error {
	p, err := startGateway(bin)
	if err != nil {
		return err
	}
	defer p.stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opened := make(chan string, n)
	biz, err := business(ctx, p, opened)
	if err != nil {
		return err
	}
	cs, err := dial(p.client, n)
	defer closeAll(cs)
	if err != nil {
		return err
	}
	ids := make([]string, 0, n)
	for i := 0; i < n; i++ {
		ids = append(ids, <-opened)
	}
	for _, id := range ids {
		if err := biz.TopicSubscribe(id, []string{"room"}, nil); err != nil {
			return err
		}
	}
	if cnt, err := biz.TopicUniqIDCount(ctx, []string{"room"}, false); err != nil || int(cnt.Items["room"]) != n {
		return fmt.Errorf("topic members %v %v", cnt, err)
	}

	var delivered atomic.Int64
	var (
		latencies func() []time.Duration // returns and clears the latencies recorded
		stopRead  func()
	)
	if readerMode == "epoll" {
		er, err := newEpollReaders(cs, 2, &delivered)
		if err != nil {
			return err
		}
		latencies, stopRead = er.latencies, er.close
	} else {
		lat := make([][]time.Duration, n)
		var wg sync.WaitGroup
		for i, c := range cs {
			wg.Add(1)
			go func(i int, c *wsConn) {
				defer wg.Done()
				readLoop(c, &delivered, &lat[i])
			}(i, c)
		}
		// Read between runs, when the readers are idle.
		latencies = func() []time.Duration {
			var all []time.Duration
			for i := range lat {
				all = append(all, lat[i]...)
				lat[i] = lat[i][:0]
			}
			return all
		}
		stopRead = wg.Wait // p.stop closes every client: the readers end
	}
	fmt.Printf("harness reads with %s\n", readerMode)
	send := func(mode string, messages int, pace time.Duration) {
		_ = latencies()
		start0 := delivered.Load()
		cpu0, t0 := p.cpu(), time.Now()
		for i := 0; i < messages; i++ {
			msg := make([]byte, 64)
			binary.BigEndian.PutUint64(msg, uint64(time.Now().UnixNano()))
			if mode == "broadcast" {
				_ = biz.Broadcast(msg)
			} else {
				_ = biz.TopicPublish([]string{"room"}, msg)
			}
			if pace > 0 {
				time.Sleep(pace)
			}
		}
		want := start0 + int64(messages*n)
		deadline := time.Now().Add(2 * time.Minute)
		for delivered.Load() < want && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		el, cpu := time.Since(t0), p.cpu()-cpu0
		got := delivered.Load() - start0
		all := latencies()
		slices.Sort(all)
		pct := func(q float64) time.Duration {
			if len(all) == 0 {
				return 0
			}
			return all[int(q*float64(len(all)-1))]
		}
		label := "back to back"
		if pace > 0 {
			label = fmt.Sprintf("paced 1 per %s", pace)
		}
		fmt.Printf("%s to %d connections, %d x 64 B (%s): %d delivered in %s = %.0f msg/s; gateway CPU %s = %.2f us per delivered message; latency p50 %s p99 %s max %s\n",
			mode, n, messages, label, got, el.Round(time.Millisecond), float64(got)/el.Seconds(), cpu,
			float64(cpu.Microseconds())/float64(max(got, 1)), pct(0.5).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), pct(1).Round(10*time.Microsecond))
	}
	send("broadcast", messages, 0)
	send("topic", messages, 0)
	// Latency at a sustainable load: 5 messages/s to every connection.
	send("broadcast", messages/5, 200*time.Millisecond)
	send("topic", messages/5, 200*time.Millisecond)
	p.stop()
	stopRead()
	return nil
}

// readLoop counts delivered frames and records the latency of each (the
// first 8 payload bytes are the send time).
func readLoop(c *wsConn, delivered *atomic.Int64, lat *[]time.Duration) {
	var h [2]byte
	buf := make([]byte, 256)
	for {
		if _, err := io.ReadFull(c.r, h[:]); err != nil {
			return
		}
		n := int(h[1] & 0x7F)
		if n >= 126 {
			return // the benchmark sends 64-byte messages only
		}
		if _, err := io.ReadFull(c.r, buf[:n]); err != nil {
			return
		}
		if n >= 8 {
			sent := int64(binary.BigEndian.Uint64(buf[:8]))
			*lat = append(*lat, time.Duration(time.Now().UnixNano()-sent))
		}
		delivered.Add(1)
	}
}
