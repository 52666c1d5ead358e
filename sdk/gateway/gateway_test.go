package gateway_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/lesismal/nbio/logging"

	"github.com/croupier/croupier/api/netsvr"
	gw "github.com/croupier/croupier/internal/gateway"
	"github.com/croupier/croupier/sdk/gateway"
)

func TestMain(m *testing.M) {
	logging.SetLevel(logging.LevelNone)
	os.Exit(m.Run())
}

func startGateway(t *testing.T, businessAddr string) *gw.Gateway {
	t.Helper()
	cfg := gw.DefaultConfig()
	cfg.ClientAddr, cfg.BusinessAddr = "127.0.0.1:0", businessAddr
	cfg.ConnOpenWorkerID, cfg.ConnCloseWorkerID = 1, 1
	g, err := gw.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	return g
}

// ws is a bare WebSocket client: enough to send text and read one frame.
type ws struct {
	conn net.Conn
	r    *bufio.Reader
}

func dialWS(t *testing.T, addr string) *ws {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	var k [16]byte
	_, _ = rand.Read(k[:])
	fmt.Fprintf(conn, "GET /netsvr HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", addr, base64.StdEncoding.EncodeToString(k[:]))
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	return &ws{conn: conn, r: r}
}

func (w *ws) send(s string) {
	f := []byte{0x81, 0x80 | byte(len(s)), 0, 0, 0, 0} // zero mask key
	_, _ = w.conn.Write(append(f, s...))
}

func (w *ws) read(t *testing.T) string {
	t.Helper()
	_ = w.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var h [2]byte
	if _, err := io.ReadFull(w.r, h[:]); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, h[1]&0x7F) // tests send short messages only
	if _, err := io.ReadFull(w.r, p); err != nil {
		t.Fatal(err)
	}
	return string(p)
}

func TestClientAgainstGateway(t *testing.T) {
	g := startGateway(t, "127.0.0.1:0")
	opened := make(chan *netsvr.ConnOpen, 1)
	closed := make(chan *netsvr.ConnClose, 1)
	transfers := make(chan *netsvr.Transfer, 1)
	c, err := gateway.New(gateway.Config{
		Addr: g.BusinessAddr(), WorkerID: 1, ServerID: 1,
		HeartbeatInterval: 50 * time.Millisecond,
		OnConnOpen:        func(m *netsvr.ConnOpen) { opened <- m },
		OnConnClose:       func(m *netsvr.ConnClose) { closed <- m },
		OnTransfer:        func(m *netsvr.Transfer) { transfers <- m },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-runDone; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := c.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	if c.RegisterID() == "" {
		t.Error("no register id")
	}

	client := dialWS(t, g.ClientAddr())
	id := (<-opened).UniqId
	client.send("001hi")
	if tr := <-transfers; tr.UniqId != id || string(tr.Data) != "hi" {
		t.Errorf("Transfer %v", tr)
	}
	if err := c.SingleCast(id, []byte("hello back")); err != nil {
		t.Fatal(err)
	}
	if got := client.read(t); got != "hello back" {
		t.Errorf("client got %q", got)
	}
	if err := c.TopicSubscribe(id, []string{"lobby"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.TopicPublish([]string{"lobby"}, []byte("to lobby")); err != nil {
		t.Fatal(err)
	}
	if got := client.read(t); got != "to lobby" {
		t.Errorf("client got %q", got)
	}
	// Requests are answered in order even when issued back to back.
	online, err := c.CheckOnline(wctx, []string{id, "nobody"})
	if err != nil || !slices.Equal(online, []string{id}) {
		t.Errorf("CheckOnline %v %v", online, err)
	}
	cnt, err := c.TopicUniqIDCount(wctx, []string{"lobby"}, false)
	if err != nil || cnt.Items["lobby"] != 1 {
		t.Errorf("TopicUniqIdCount %v %v", cnt, err)
	}
	m, err := c.Metrics(wctx)
	if err != nil || m.Items[3].GetCount() != 1 {
		t.Errorf("Metrics transfer count %v %v", m.Items[3], err)
	}
	if l, err := c.Limit(wctx); err != nil || len(l.Items) != 0 {
		t.Errorf("Limit %v %v", l, err)
	}
	if tok, err := c.CustomUniqIDToken(wctx); err != nil || tok.Token == "" {
		t.Errorf("CustomUniqIDToken %v %v", tok, err)
	}
	_ = client.conn.Close()
	if cl := <-closed; cl.UniqId != id {
		t.Errorf("ConnClose %v", cl)
	}

	// The gateway restarts on the same address: the client reconnects and
	// registers again.
	addr := g.BusinessAddr()
	g.Close()
	g2 := startGateway(t, addr)
	defer g2.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if n, err := c.UniqIDCount(wctx); err == nil && n.Count == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("client did not reconnect")
		}
		time.Sleep(20 * time.Millisecond)
	}
	client2 := dialWS(t, g2.ClientAddr())
	<-opened
	client2.send("001again")
	if tr := <-transfers; string(tr.Data) != "again" {
		t.Errorf("after reconnect: Transfer %v", tr)
	}
}

func TestRegisterRefused(t *testing.T) {
	g := startGateway(t, "127.0.0.1:0")
	defer g.Close()
	c, err := gateway.New(gateway.Config{Addr: g.BusinessAddr(), WorkerID: 1, ServerID: 99})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var re *gateway.RegisterError
	if err := c.Run(ctx); !errors.As(err, &re) || re.Code != netsvr.RegisterRespCode_ServerIdInconsistent {
		t.Fatalf("Run: %v, want ServerIdInconsistent", err)
	}
	if _, err := gateway.New(gateway.Config{Addr: "x", WorkerID: 1000}); err == nil {
		t.Error("workerId 1000 accepted")
	}
}
