package gateway_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/croupier/croupier/api/netsvr"
	"github.com/croupier/croupier/internal/gateway"
)

// 10,000 WebSockets opened and closed in batches leave no connection, no
// goroutine and no retained heap behind.
func TestConnectionChurnLeavesNothing(t *testing.T) {
	g := startGateway(t, func(c *gateway.Config) { c.ConnCloseWorkerID = 0 })
	b := dialBiz(t, g)
	count := func() int32 {
		r := &netsvr.UniqIdCountResp{}
		b.call(netsvr.Cmd_UniqIdCount, nil, r)
		return r.Count
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	// A first batch warms pools and buffers up before the baseline.
	churn(t, g, 500)
	waitFor(t, "warm-up connections to close", func() bool { return count() == 0 })
	goroutines, heap0 := runtime.NumGoroutine(), heap()

	const total, batch = 10000, 500
	for done := 0; done < total; done += batch {
		churn(t, g, batch)
	}
	waitFor(t, "every connection to close", func() bool { return count() == 0 })
	waitFor(t, "goroutines to return to the baseline", func() bool { return runtime.NumGoroutine() <= goroutines })
	if grown := int64(heap()) - int64(heap0); grown > 4<<20 {
		t.Errorf("heap in use grew by %d bytes over %d connections", grown, total)
	}
}

// churn opens n connections at once, then closes them all.
func churn(t *testing.T, g *gateway.Gateway, n int) {
	t.Helper()
	cs := make([]net.Conn, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cs[i], errs[i] = upgrade(g.ClientAddr())
		}()
	}
	wg.Wait()
	for i, c := range cs {
		if errs[i] != nil {
			t.Fatalf("connection %d: %v", i, errs[i])
		}
		_ = c.Close()
	}
}

// upgrade opens one WebSocket and returns its socket once the 101 arrived.
func upgrade(addr string) (net.Conn, error) {
	conn, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(ioTimeout))
	fmt.Fprintf(conn, "GET /netsvr HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", addr)
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 512), nil)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		_ = conn.Close()
		return nil, fmt.Errorf("upgrade: HTTP %d", resp.StatusCode)
	}
	return conn, nil
}
