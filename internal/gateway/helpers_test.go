package gateway_test

// Black-box helpers written from the wire reference
// (../shared/reference/netsvr-v2.0.2.md), not from the gateway's code: the
// business frame and the WebSocket frames are encoded here by hand.

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lesismal/nbio/logging"
	"google.golang.org/protobuf/proto"

	"github.com/croupier/croupier/api/netsvr"
	"github.com/croupier/croupier/internal/gateway"
)

const ioTimeout = 10 * time.Second

func TestMain(m *testing.M) {
	logging.SetLevel(logging.LevelNone)
	// The churn test holds ~1,000 sockets at once (both ends of 500
	// connections): raise the soft open-file limit to the hard one, since
	// a default soft limit of 1024 would not be enough.
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	os.Exit(m.Run())
}

func startGateway(t *testing.T, mutate func(*gateway.Config)) *gateway.Gateway {
	t.Helper()
	return startGatewayWithLog(t, mutate, nil)
}

// startGatewayWithLog is startGateway logging to log (nil: discarded).
func startGatewayWithLog(t *testing.T, mutate func(*gateway.Config), log *slog.Logger) *gateway.Gateway {
	t.Helper()
	g := newGateway(t, mutate, log)
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g
}

// newGateway is startGateway's gateway before Start.
func newGateway(t *testing.T, mutate func(*gateway.Config), log *slog.Logger) *gateway.Gateway {
	t.Helper()
	cfg := gateway.DefaultConfig()
	cfg.ClientAddr = "127.0.0.1:0"
	cfg.BusinessAddr = "127.0.0.1:0"
	cfg.ServerID = 7
	cfg.ConnectRatePerIP = 0 // every test client connects from 127.0.0.1
	if mutate != nil {
		mutate(&cfg)
	}
	g, err := gateway.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// waitFor polls cond every 10ms for up to 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// biz is a business process speaking the reference framing:
// uint32 BE length (cmd + body) | uint32 BE cmd | protobuf body.
type biz struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialBiz(t *testing.T, g *gateway.Gateway) *biz {
	t.Helper()
	conn, err := net.DialTimeout("tcp", g.BusinessAddr(), ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &biz{t: t, conn: conn, r: bufio.NewReader(conn)}
}

func (b *biz) writeRaw(p []byte) {
	b.t.Helper()
	_ = b.conn.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := b.conn.Write(p); err != nil {
		b.t.Fatalf("business write: %v", err)
	}
}

func (b *biz) send(cmd netsvr.Cmd, m proto.Message) {
	b.t.Helper()
	var body []byte
	if m != nil {
		var err error
		if body, err = proto.Marshal(m); err != nil {
			b.t.Fatal(err)
		}
	}
	p := make([]byte, 8, 8+len(body))
	binary.BigEndian.PutUint32(p[0:4], uint32(4+len(body)))
	binary.BigEndian.PutUint32(p[4:8], uint32(cmd))
	b.writeRaw(append(p, body...))
}

// readPayload reads one frame and returns what follows the length.
func (b *biz) readPayload() ([]byte, error) {
	_ = b.conn.SetReadDeadline(time.Now().Add(ioTimeout))
	var hdr [4]byte
	if _, err := io.ReadFull(b.r, hdr[:]); err != nil {
		return nil, err
	}
	p := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(b.r, p); err != nil {
		return nil, err
	}
	return p, nil
}

// recv reads one cmd frame, which must be cmd, into m. ConnClose events
// (which arrive whenever a client leaves) are skipped unless asked for.
func (b *biz) recv(cmd netsvr.Cmd, m proto.Message) {
	b.t.Helper()
	var p []byte
	for {
		var err error
		if p, err = b.readPayload(); err != nil {
			b.t.Fatalf("business read (want %s): %v", cmd, err)
		}
		if len(p) < 4 {
			b.t.Fatalf("business read (want %s): %q", cmd, p)
		}
		got := netsvr.Cmd(binary.BigEndian.Uint32(p))
		if got == cmd {
			break
		}
		if got != netsvr.Cmd_ConnClose {
			b.t.Fatalf("business read: cmd %s, want %s", got, cmd)
		}
	}
	if err := proto.Unmarshal(p[4:], m); err != nil {
		b.t.Fatal(err)
	}
}

// call sends a request and reads its response (same cmd).
func (b *biz) call(cmd netsvr.Cmd, req, resp proto.Message) {
	b.t.Helper()
	b.send(cmd, req)
	b.recv(cmd, resp)
}

func (b *biz) register(workerID int32, serverID uint32) *netsvr.RegisterResp {
	b.t.Helper()
	resp := &netsvr.RegisterResp{}
	b.call(netsvr.Cmd_Register, &netsvr.RegisterReq{WorkerId: workerID, ServerId: serverID}, resp)
	return resp
}

func (b *biz) mustRegister(workerID int32) {
	b.t.Helper()
	if r := b.register(workerID, 7); r.Code != netsvr.RegisterRespCode_Success || r.RegisterId == "" {
		b.t.Fatalf("register %d: %v", workerID, r)
	}
}

func (b *biz) online(ids ...string) []string {
	b.t.Helper()
	resp := &netsvr.CheckOnlineResp{}
	b.call(netsvr.Cmd_CheckOnline, &netsvr.CheckOnlineReq{UniqIds: ids}, resp)
	return resp.UniqIds
}

// expectClosed asserts the gateway closes the business connection.
func (b *biz) expectClosed() {
	b.t.Helper()
	for {
		p, err := b.readPayload()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "reset") {
				return
			}
			b.t.Fatalf("business connection not closed: %v", err)
		}
		_ = p
	}
}

// wsc is a minimal RFC 6455 client over a raw TCP socket, so tests can send
// any frame (fragments, bad UTF-8, oversized) and see close codes.
type wsc struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

type wsOpts struct {
	query  string
	header http.Header
	tls    *tls.Config // wss:// when set
}

// dialWS performs the handshake and returns the client and the HTTP status.
func dialWSStatus(t *testing.T, g *gateway.Gateway, o wsOpts) (*wsc, int) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", g.ClientAddr(), ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if o.tls != nil {
		tc := tls.Client(conn, o.tls)
		_ = tc.SetDeadline(time.Now().Add(ioTimeout))
		if err := tc.Handshake(); err != nil {
			t.Fatalf("TLS handshake: %v", err)
		}
		conn = tc
	}
	t.Cleanup(func() { _ = conn.Close() })
	var k [16]byte
	_, _ = rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	path := "/netsvr"
	if o.query != "" {
		path += "?" + o.query
	}
	var req strings.Builder
	fmt.Fprintf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n", path, g.ClientAddr(), key)
	for name, vs := range o.header {
		for _, v := range vs {
			fmt.Fprintf(&req, "%s: %s\r\n", name, v)
		}
	}
	req.WriteString("\r\n")
	_ = conn.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := io.WriteString(conn, req.String()); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		_ = resp.Body.Close()
		return nil, resp.StatusCode
	}
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != base64.StdEncoding.EncodeToString(h[:]) {
		t.Fatalf("bad Sec-WebSocket-Accept %q", got)
	}
	_ = conn.SetDeadline(time.Time{})
	return &wsc{t: t, conn: conn, r: r}, resp.StatusCode
}

func dialWS(t *testing.T, g *gateway.Gateway) *wsc {
	t.Helper()
	c, status := dialWSStatus(t, g, wsOpts{})
	if c == nil {
		t.Fatalf("upgrade refused: HTTP %d", status)
	}
	return c
}

const (
	opCont   = 0x0
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xA
)

// writeFrame sends one masked frame.
func (c *wsc) writeFrame(fin bool, op byte, payload []byte) {
	c.t.Helper()
	b0 := op
	if fin {
		b0 |= 0x80
	}
	f := []byte{b0}
	n := len(payload)
	switch {
	case n < 126:
		f = append(f, 0x80|byte(n))
	case n <= 0xFFFF:
		f = append(f, 0x80|126, byte(n>>8), byte(n))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	f = append(f, mask[:]...)
	for i, ch := range payload {
		f = append(f, ch^mask[i%4])
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := c.conn.Write(f); err != nil {
		c.t.Fatalf("ws write: %v", err)
	}
}

func (c *wsc) sendText(s string) { c.t.Helper(); c.writeFrame(true, opText, []byte(s)) }

// readFrame reads one frame (server frames are unmasked).
func (c *wsc) readFrame() (fin bool, op byte, payload []byte, err error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(ioTimeout))
	var h [2]byte
	if _, err = io.ReadFull(c.r, h[:]); err != nil {
		return
	}
	fin, op = h[0]&0x80 != 0, h[0]&0x0F
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var e [2]byte
		if _, err = io.ReadFull(c.r, e[:]); err != nil {
			return
		}
		n = uint64(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		if _, err = io.ReadFull(c.r, e[:]); err != nil {
			return
		}
		n = binary.BigEndian.Uint64(e[:])
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(c.r, payload)
	return
}

// readMessage reads one whole data or control message.
func (c *wsc) readMessage() (op byte, payload []byte) {
	c.t.Helper()
	fin, op, payload, err := c.readFrame()
	if err != nil {
		c.t.Fatalf("ws read: %v", err)
	}
	for !fin {
		var more []byte
		var cop byte
		fin, cop, more, err = c.readFrame()
		if err != nil {
			c.t.Fatalf("ws read: %v", err)
		}
		if cop != opCont {
			c.t.Fatalf("ws read: opcode %d inside a fragmented message", cop)
		}
		payload = append(payload, more...)
	}
	return op, payload
}

// expectText reads the next message, which must be text s.
func (c *wsc) expectData(want string) {
	c.t.Helper()
	op, p := c.readMessage()
	if (op != opText && op != opBinary) || string(p) != want {
		c.t.Fatalf("ws got op %d %q, want data %q", op, p, want)
	}
}

// expectClose reads until a close frame or EOF and returns the close code
// (0 when the socket ended without one).
func (c *wsc) expectClose() int {
	c.t.Helper()
	for {
		_, op, p, err := c.readFrame()
		if err != nil {
			return 0
		}
		if op == opClose {
			if len(p) >= 2 {
				return int(binary.BigEndian.Uint16(p))
			}
			return 1005
		}
	}
}

// connOpen reads the business's ConnOpen and returns the uniqId.
func (b *biz) connOpen() *netsvr.ConnOpen {
	b.t.Helper()
	m := &netsvr.ConnOpen{}
	b.recv(netsvr.Cmd_ConnOpen, m)
	return m
}
