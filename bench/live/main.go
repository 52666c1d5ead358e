// Command live measures HTTP-FLV fan-out (docs/live.md, docs/benchmarks.md):
// one 2 Mbit/s stream published over RTMP to N viewers on the publisher's
// node, and to N viewers on a second node through one relay. It reports
// CPU per viewer, memory per viewer and the added latency publish → viewer
// (p50/p99) from the wall-clock timestamps the publisher puts in the
// stream, with a one-viewer baseline measured in the same run.
//
// Everything runs in this process on 127.0.0.1, so CPU includes the
// viewers' side (reading and parsing FLV) and the publisher; the relay uses
// plaintext gRPC on loopback (production relays use mTLS).
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/message"
	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	streamv1 "github.com/croupier/croupier/api/synctv/stream/v1"
	"github.com/croupier/croupier/internal/auth"
	"github.com/croupier/croupier/internal/cluster"
	"github.com/croupier/croupier/internal/live"
	"github.com/croupier/croupier/internal/rooms"
	"github.com/croupier/croupier/internal/store"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func main() {
	viewers := flag.Int("viewers", 500, "viewers per phase")
	bitrate := flag.Int("bitrate", 2_000_000, "stream bitrate, bit/s")
	dur := flag.Duration("duration", 10*time.Second, "measured time per phase")
	flag.Parse()
	if err := run(*viewers, *bitrate, *dur); err != nil {
		log.Fatal(err)
	}
}

type env struct {
	svc    *rooms.Service
	room   string
	token  string
	key    string
	a, b   *live.Node
	aHTTP  string
	bHTTP  string
	cancel func()
}

func setup(ctx context.Context) (*env, error) {
	dir, err := os.MkdirTemp("", "bench-live")
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, store.Config{Driver: store.DriverSQLite, DSN: filepath.Join(dir, "db")})
	if err != nil {
		return nil, err
	}
	if err := st.Migrate(ctx); err != nil {
		return nil, err
	}
	svc, err := rooms.New(ctx, rooms.Config{Store: st, Argon2: auth.Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}})
	if err != nil {
		return nil, err
	}
	reg, err := svc.Register(ctx, "", &clientv1.RegisterRequest{Username: "host", Password: "bench-password"})
	if err != nil {
		return nil, err
	}
	c := rooms.Caller{UserID: reg.GetUser().GetId(), Username: "host"}
	room, err := svc.CreateRoom(ctx, c, &clientv1.CreateRoomRequest{Name: "bench"})
	if err != nil {
		return nil, err
	}
	k, err := svc.CreateStreamKey(ctx, c, &clientv1.CreateStreamKeyRequest{RoomId: room.GetRoom().GetId(), Name: "main"})
	if err != nil {
		return nil, err
	}
	e := &env{svc: svc, room: room.GetRoom().GetId(), token: reg.GetAccessToken(), key: k.GetKey().GetKey()}
	// The nodes' leases live in an embedded NATS, as in a cluster.
	bus, err := cluster.Start(ctx, cluster.Config{NodeID: "bench", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	leases, err := live.NewKVLeases(ctx, bus.JetStream(), live.KVLeasesConfig{})
	if err != nil {
		return nil, err
	}
	closers := []func(){bus.Close}
	warnLog := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	mk := func(id string) (*live.Node, string, error) {
		gl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, "", err
		}
		// Every viewer is the host's token: the per-member cap is lifted.
		n, err := live.New(live.Config{NodeID: id, RTMPAddr: "127.0.0.1:0", RelayAddr: gl.Addr().String(), Rooms: svc, Leases: leases, Logger: warnLog,
			MaxViewersPerUser: 1 << 20,
			RelayDial: func(addr string) (*grpc.ClientConn, error) {
				return grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			}})
		if err != nil {
			return nil, "", err
		}
		if err := n.Start(); err != nil {
			return nil, "", err
		}
		gs := grpc.NewServer()
		streamv1.RegisterStreamRelayServiceServer(gs, n.RelayServer())
		go func() { _ = gs.Serve(gl) }()
		hl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, "", err
		}
		mux := http.NewServeMux()
		mux.Handle(live.PlayPrefix, n)
		hs := &http.Server{Handler: mux}
		go func() { _ = hs.Serve(hl) }()
		closers = append(closers, func() { _ = hs.Close(); n.Close(); gs.Stop() })
		return n, "http://" + hl.Addr().String(), nil
	}
	if e.a, e.aHTTP, err = mk("a"); err != nil {
		return nil, err
	}
	if e.b, e.bHTTP, err = mk("b"); err != nil {
		return nil, err
	}
	e.cancel = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
		svc.Close()
		_ = st.Close()
		_ = os.RemoveAll(dir)
	}
	return e, nil
}

// publish sends synthetic H.264-shaped video at bitrate: 25 frames/s, a
// keyframe (4x a frame) every 2 s, DTS = wall clock since start.
func publish(ctx context.Context, addr, room, key string, bitrate int, start time.Time) error {
	u, _ := url.Parse("rtmp://" + addr + "/" + room + "/" + key)
	c := &gortmplib.Client{URL: u, Publish: true}
	if err := c.Initialize(ctx); err != nil {
		return err
	}
	defer c.Close()
	frame := bitrate / 8 / 25 * 50 / 53 // keyframes are 4 frames: 53 frame-units per 50 frames
	buf := make([]byte, 4*frame)
	_, _ = rand.Read(buf)
	t := time.NewTicker(40 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		key := i%50 == 0
		n := frame
		if key {
			n = 4 * frame
		}
		err := c.Write(&message.Video{ChunkStreamID: message.VideoChunkStreamID, MessageStreamID: 0x1000000, Codec: message.CodecH264,
			IsKeyFrame: key, Type: message.VideoTypeAU, DTS: time.Since(start), AU: buf[:n]})
		if err != nil {
			return err
		}
	}
}

type result struct {
	lat      []time.Duration
	bytes    int64
	viewers  int
	cpu      time.Duration
	heap     uint64
	dur      time.Duration
	failures int64
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

// phase attaches n viewers to base, waits until all receive, then
// measures for dur.
func phase(base, room, token string, n int, dur time.Duration, start time.Time) (result, error) {
	heap0 := heapInUse()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var measuring atomic.Bool
	var mu sync.Mutex
	var lat []time.Duration
	var bytes, fails atomic.Int64
	var ready sync.WaitGroup
	var wg sync.WaitGroup
	tr := &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: 0}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	for range n {
		ready.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			readyOnce := sync.OnceFunc(ready.Done)
			defer readyOnce()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+live.PlayPath(room, "main")+"?token="+token, nil)
			resp, err := hc.Do(req)
			if err != nil || resp.StatusCode != http.StatusOK {
				fails.Add(1)
				return
			}
			defer resp.Body.Close()
			r := bufio.NewReaderSize(resp.Body, 64<<10)
			var hdr [13]byte
			if _, err := io.ReadFull(r, hdr[:]); err != nil {
				fails.Add(1)
				return
			}
			var local []time.Duration
			defer func() { mu.Lock(); lat = append(lat, local...); mu.Unlock() }()
			var th [11]byte
			for {
				if _, err := io.ReadFull(r, th[:]); err != nil {
					return
				}
				size := int(th[1])<<16 | int(th[2])<<8 | int(th[3])
				ts := time.Duration(uint32(th[7])<<24|uint32(th[4])<<16|uint32(th[5])<<8|uint32(th[6])) * time.Millisecond
				if _, err := r.Discard(size + 4); err != nil {
					return
				}
				readyOnce()
				if measuring.Load() {
					bytes.Add(int64(size + 15))
					local = append(local, time.Since(start)-ts)
				}
			}
		}()
	}
	ready.Wait()
	time.Sleep(time.Second) // let the GOP replay drain before measuring
	heap1 := heapInUse()
	cpu0, t0 := cpuTime(), time.Now()
	measuring.Store(true)
	time.Sleep(dur)
	measuring.Store(false)
	cpu1, el := cpuTime(), time.Since(t0)
	cancel()
	wg.Wait()
	slices.Sort(lat)
	return result{lat: lat, bytes: bytes.Load(), viewers: n, cpu: cpu1 - cpu0, heap: heap1 - min(heap0, heap1), dur: el, failures: fails.Load()}, nil
}

func (r result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[min(len(r.lat)-1, int(float64(len(r.lat))*p))]
}

func (r result) print(name string) {
	cores := r.cpu.Seconds() / r.dur.Seconds()
	fmt.Printf("%-28s viewers %4d  recv %6.1f Mbit/s  CPU %5.2f cores (%6.3f%% of a core per viewer)  latency p50 %6.1f ms p99 %6.1f ms  mem %7.1f KiB/viewer  failed %d\n",
		name, r.viewers, float64(r.bytes)*8/r.dur.Seconds()/1e6, cores, 100*cores/float64(r.viewers),
		float64(r.pct(0.5).Microseconds())/1000, float64(r.pct(0.99).Microseconds())/1000,
		float64(r.heap)/1024/float64(r.viewers), r.failures)
}

func run(viewers, bitrate int, dur time.Duration) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e, err := setup(ctx)
	if err != nil {
		return err
	}
	defer e.cancel()
	start := time.Now()
	pubErr := make(chan error, 1)
	go func() { pubErr <- publish(ctx, e.a.RTMPAddr(), e.room, e.key, bitrate, start) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, _ := e.a.Status(ctx, e.room+"/main")
		if st.GetStats().GetTotalBytes() > 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the stream did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var base result
	fmt.Printf("bench/live: one %.1f Mbit/s stream, %v per phase, GOMAXPROCS %d\n", float64(bitrate)/1e6, dur, runtime.GOMAXPROCS(0))
	for _, p := range []struct {
		name string
		base string
		n    int
	}{
		{"baseline: 1 viewer, node a", e.aHTTP, 1},
		{"node a (publisher's node)", e.aHTTP, viewers},
		{"node b (through one relay)", e.bHTTP, viewers},
	} {
		r, err := phase(p.base, e.room, e.token, p.n, dur, start)
		if err != nil {
			return err
		}
		r.print(p.name)
		if p.n == 1 {
			base = r
		} else {
			extra := (r.cpu.Seconds()/r.dur.Seconds() - base.cpu.Seconds()/base.dur.Seconds()) / float64(p.n-1)
			fmt.Printf("%-28s CPU above the baseline: %.3f%% of a core per added viewer; p99 added over baseline %+.1f ms\n", "",
				100*extra, float64((r.pct(0.99)-base.pct(0.99)).Microseconds())/1000)
		}
	}
	cancel()
	return <-pubErr
}
