// Package gateway is the Go SDK of business processes for the Croupier
// player gateway (`croupier gateway`) and any gateway speaking the netsvr
// business protocol v2.0.2. A Client connects, registers a workerId, keeps
// the connection alive with heartbeats, reconnects and re-registers when it
// drops, hands ConnOpen, ConnClose and Transfer to handlers, and offers one
// typed method per command.
//
// The gateway answers a connection's requests in the order it receives
// them, with no correlation id, so the Client matches responses to requests
// in order.
package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/croupier/croupier/api/netsvr"
)

// Config configures a Client. Addr and WorkerID are required.
type Config struct {
	// Addr is the gateway's business address, e.g. 127.0.0.1:6061.
	Addr string
	// WorkerID (1–999) is the 3-digit prefix clients use to reach this
	// process: a client message "001hi" reaches workerId 1.
	WorkerID int32
	// ServerID must equal the gateway's server id.
	ServerID uint32
	// ProcessCmdGoroutineNum > 1 lets the gateway run this process's
	// one-way commands on that many goroutines (at most 64), so they may
	// take effect in any order; answered commands still wait for the
	// earlier ones (docs/gateway.md). Default 1: every command in order.
	ProcessCmdGoroutineNum uint32
	// TLS, when set, dials with TLS (mTLS when it carries a certificate):
	// required by a gateway whose business listener is off loopback.
	TLS *tls.Config
	// HeartbeatInterval is how often a heartbeat is sent (default 30s; the
	// gateway drops a business silent for its read deadline, 120s).
	HeartbeatInterval time.Duration
	// ReconnectMax caps the wait between reconnect attempts (default 10s).
	ReconnectMax time.Duration
	// FrameLimit bounds a frame from the gateway (default 2 MiB).
	FrameLimit int
	// Handlers run on the Client's reader goroutine, one at a time and in
	// arrival order; a slow handler delays the ones after it. One-way
	// commands (SingleCast, TopicPublish, ...) may be called from a
	// handler; request/response methods must be called from another
	// goroutine, since their answer is read by the goroutine the handler
	// runs on.
	OnConnOpen  func(*netsvr.ConnOpen)
	OnConnClose func(*netsvr.ConnClose)
	OnTransfer  func(*netsvr.Transfer)
	Logger      *slog.Logger
}

// ErrNotConnected is returned by calls made while the Client has no
// registered connection.
var ErrNotConnected = errors.New("gateway sdk: not connected to the gateway")

// RegisterError is a refused registration; Run returns it (retrying will
// not help).
type RegisterError struct {
	Code    netsvr.RegisterRespCode
	Message string
}

func (e *RegisterError) Error() string {
	return fmt.Sprintf("gateway refused registration: %s: %s", e.Code, e.Message)
}

var (
	pingMessage = []byte("~3yPvmnz~")
	pongMessage = []byte("~u38NvZ~")
)

// Client is a business process's connection to one gateway.
type Client struct {
	cfg Config
	log *slog.Logger

	mu         sync.Mutex
	conn       net.Conn
	pending    []pendingCall
	registerID string
	ready      chan struct{} // closed while registered; replaced on disconnect
}

type pendingCall struct {
	cmd netsvr.Cmd
	ch  chan []byte // receives the body; closed on disconnect
}

// New returns a Client; Run connects it.
func New(cfg Config) (*Client, error) {
	if cfg.Addr == "" {
		return nil, errors.New("gateway sdk: Config.Addr is empty; set the gateway's business address, e.g. 127.0.0.1:6061")
	}
	if cfg.WorkerID < 1 || cfg.WorkerID > 999 {
		return nil, fmt.Errorf("gateway sdk: Config.WorkerID %d must be 1–999", cfg.WorkerID)
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 30 * time.Second
	}
	if cfg.ReconnectMax <= 0 {
		cfg.ReconnectMax = 10 * time.Second
	}
	if cfg.FrameLimit <= 0 {
		cfg.FrameLimit = 2 << 20
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{cfg: cfg, log: log, ready: make(chan struct{})}, nil
}

// Run connects, registers and serves until ctx ends, reconnecting with
// backoff. It returns a *RegisterError when the gateway refuses the
// registration, and nil when ctx ends.
func (c *Client) Run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		err := c.session(ctx)
		var re *RegisterError
		if errors.As(err, &re) {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		c.log.Warn("gateway sdk: disconnected; reconnecting", "addr", c.cfg.Addr, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, c.cfg.ReconnectMax)
	}
}

// WaitReady blocks until the Client is registered or ctx ends.
func (c *Client) WaitReady(ctx context.Context) error {
	c.mu.Lock()
	ready := c.ready
	c.mu.Unlock()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// RegisterID is the id the gateway gave the current registration.
func (c *Client) RegisterID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.registerID
}

// session runs one connection: dial, register, then read until it fails.
func (c *Client) session(ctx context.Context) error {
	d := net.Dialer{Timeout: 10 * time.Second}
	var conn net.Conn
	var err error
	if c.cfg.TLS != nil {
		td := tls.Dialer{NetDialer: &d, Config: c.cfg.TLS}
		conn, err = td.DialContext(ctx, "tcp", c.cfg.Addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", c.cfg.Addr)
	}
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	defer conn.Close()
	r := bufio.NewReader(conn)

	// Register before anything else; the gateway answers it first.
	if err := writeFrame(conn, netsvr.Cmd_Register, &netsvr.RegisterReq{WorkerId: c.cfg.WorkerID, ServerId: c.cfg.ServerID, ProcessCmdGoroutineNum: c.cfg.ProcessCmdGoroutineNum}); err != nil {
		return err
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	cmd, body, err := readFrame(r, c.cfg.FrameLimit)
	if err != nil {
		return fmt.Errorf("waiting for RegisterResp: %w", err)
	}
	resp := &netsvr.RegisterResp{}
	if cmd != netsvr.Cmd_Register || proto.Unmarshal(body, resp) != nil {
		return fmt.Errorf("gateway answered Register with cmd %d", cmd)
	}
	if resp.Code != netsvr.RegisterRespCode_Success {
		return &RegisterError{Code: resp.Code, Message: resp.Message}
	}
	_ = conn.SetReadDeadline(time.Time{})

	c.mu.Lock()
	c.conn, c.registerID = conn, resp.RegisterId
	close(c.ready)
	c.mu.Unlock()
	defer c.disconnect()

	hbDone := make(chan struct{})
	defer close(hbDone)
	go c.heartbeat(conn, hbDone)

	for {
		cmd, body, err := readFrame(r, c.cfg.FrameLimit)
		if err != nil {
			return err
		}
		c.deliver(cmd, body)
	}
}

func (c *Client) disconnect() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn, c.registerID = nil, ""
	for _, p := range c.pending {
		close(p.ch)
	}
	c.pending = nil
	c.ready = make(chan struct{})
}

// heartbeat pings until done closes; a failed write ends the connection
// (the reader then sees the error).
func (c *Client) heartbeat(conn net.Conn, done <-chan struct{}) {
	t := time.NewTicker(c.cfg.HeartbeatInterval)
	defer t.Stop()
	ping := binary.BigEndian.AppendUint32(nil, uint32(len(pingMessage)))
	ping = append(ping, pingMessage...)
	for {
		select {
		case <-done:
			return
		case <-t.C:
			c.mu.Lock()
			_, err := conn.Write(ping)
			c.mu.Unlock()
			if err != nil {
				_ = conn.Close()
				return
			}
		}
	}
}

// deliver hands an event to its handler or a response to the oldest
// pending call.
func (c *Client) deliver(cmd netsvr.Cmd, body []byte) {
	switch cmd {
	case heartbeatCmd:
		return
	case netsvr.Cmd_ConnOpen:
		if m := (&netsvr.ConnOpen{}); c.cfg.OnConnOpen != nil && c.decode(body, m) {
			c.cfg.OnConnOpen(m)
		}
		return
	case netsvr.Cmd_ConnClose:
		if m := (&netsvr.ConnClose{}); c.cfg.OnConnClose != nil && c.decode(body, m) {
			c.cfg.OnConnClose(m)
		}
		return
	case netsvr.Cmd_Transfer:
		if m := (&netsvr.Transfer{}); c.cfg.OnTransfer != nil && c.decode(body, m) {
			c.cfg.OnTransfer(m)
		}
		return
	}
	c.mu.Lock()
	if len(c.pending) == 0 || c.pending[0].cmd != cmd {
		c.mu.Unlock()
		c.log.Warn("gateway sdk: unexpected frame from the gateway", "cmd", cmd)
		return
	}
	p := c.pending[0]
	c.pending = c.pending[1:]
	c.mu.Unlock()
	p.ch <- body
}

func (c *Client) decode(body []byte, m proto.Message) bool {
	if err := proto.Unmarshal(body, m); err != nil {
		c.log.Warn("gateway sdk: undecodable event", "type", fmt.Sprintf("%T", m), "err", err)
		return false
	}
	return true
}

// send writes a one-way command.
func (c *Client) send(cmd netsvr.Cmd, m proto.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return ErrNotConnected
	}
	return writeFrame(c.conn, cmd, m)
}

// call writes a request and waits for its response, decoded into resp.
func (c *Client) call(ctx context.Context, cmd netsvr.Cmd, req, resp proto.Message) error {
	ch := make(chan []byte, 1)
	c.mu.Lock()
	if c.conn == nil {
		c.mu.Unlock()
		return ErrNotConnected
	}
	// Queue and write under one lock so the queue order is the wire order.
	if err := writeFrame(c.conn, cmd, req); err != nil {
		c.mu.Unlock()
		return err
	}
	c.pending = append(c.pending, pendingCall{cmd: cmd, ch: ch})
	c.mu.Unlock()
	select {
	case body, ok := <-ch:
		if !ok {
			return ErrNotConnected
		}
		return proto.Unmarshal(body, resp)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// heartbeatCmd marks a heartbeat frame in readFrame's result: no real cmd
// is 0.
const heartbeatCmd netsvr.Cmd = 0

func writeFrame(w io.Writer, cmd netsvr.Cmd, m proto.Message) error {
	var body []byte
	if m != nil {
		var err error
		if body, err = proto.Marshal(m); err != nil {
			return err
		}
	}
	buf := make([]byte, 8, 8+len(body))
	binary.BigEndian.PutUint32(buf, uint32(4+len(body)))
	binary.BigEndian.PutUint32(buf[4:], uint32(cmd))
	_, err := w.Write(append(buf, body...))
	return err
}

func readFrame(r io.Reader, limit int) (netsvr.Cmd, []byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(limit) {
		return 0, nil, fmt.Errorf("gateway frame of %d bytes exceeds the limit %d", n, limit)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, err
	}
	if bytes.Equal(buf, pongMessage) || bytes.Equal(buf, pingMessage) {
		return heartbeatCmd, nil, nil
	}
	if len(buf) < 4 {
		return 0, nil, fmt.Errorf("gateway frame of %d bytes is shorter than its cmd", n)
	}
	return netsvr.Cmd(binary.BigEndian.Uint32(buf)), buf[4:], nil
}
