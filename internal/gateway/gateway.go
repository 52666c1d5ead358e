package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	llibtls "github.com/lesismal/llib/std/crypto/tls"
	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"

	"github.com/croupier/croupier/api/netsvr"
	"github.com/croupier/croupier/internal/certs"
	"github.com/croupier/croupier/internal/ratelimit"
	"github.com/croupier/croupier/internal/tlsconf"
)

// Gateway is a netsvr-compatible player gateway: game clients hold
// WebSockets, business processes connect over TCP and address clients by
// uniqId, topic or broadcast. Use New, then Start (or Run), then Close.
type Gateway struct {
	cfg Config
	log *slog.Logger

	hub        *hub
	businesses *businesses
	tokens     *tokens
	metrics    metrics
	stopTick   chan struct{}
	limits     *limits
	ipLimit    *ipLimiter
	upgrader   *websocket.Upgrader
	engine     *nbhttp.Engine
	sendOp     byte
	online     atomic.Int64
	accepted   atomic.Uint64 // see raceHandoff
	readBufs   sync.Pool
	counter    atomic.Uint32

	// beforeUpgrade, when set (tests only, before Start), runs in serveWS
	// before the upgrade: a server slow to get there.
	beforeUpgrade func()

	clientLn   net.Listener
	businessLn net.Listener
	// revoked reports whether a business certificate is on the revocation
	// list (CheckRevoked; nil: no list).
	revoked func(serial string) bool
	wg      sync.WaitGroup // business accept loop and per-business goroutines

	mu      sync.Mutex
	conns   map[*business]struct{}
	closed  bool
	closeMu sync.Once
}

// New builds a gateway from a validated configuration.
func New(cfg Config, log *slog.Logger) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lim, err := newLimits(cfg.LimitGroups)
	if err != nil {
		return nil, err
	}
	g := &Gateway{
		cfg:        cfg,
		tokens:     newTokens(cfg.CustomUniqIDTokenTTL),
		stopTick:   make(chan struct{}),
		limits:     lim,
		ipLimit:    newIPLimiter(cfg.ConnectRatePerIP, cfg.ConnectBurstPerIP),
		log:        log,
		hub:        newHub(),
		businesses: newBusinesses(),
		sendOp:     opText,
		conns:      map[*business]struct{}{},
	}
	if cfg.SendMessageType == "binary" {
		g.sendOp = opBinary
	}
	u := websocket.NewUpgrader()
	u.KeepaliveTime = cfg.ReadDeadline
	u.MessageLengthLimit = cfg.ReceivePackLimit
	u.CheckOrigin = func(*http.Request) bool { return true } // checked in serveHTTP, with our own message
	u.SetPingHandler(func(ws *websocket.Conn, _ string) {
		g.metrics.meters[metricHeartbeat].add(1)
		_ = ws.WriteMessage(websocket.PongMessage, PongMessage)
	})
	u.OnMessage(g.onMessage)
	u.OnClose(g.onClose)
	g.upgrader = u
	return g, nil
}

// Start opens both listeners and returns once they accept connections.
func (g *Gateway) Start() error {
	var err error
	if g.businessLn, err = g.listenBusiness(); err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc(g.cfg.ClientPath, g.serveWS)
	var lnErr error
	conf := nbhttp.Config{
		Network: "tcp",
		Listen: func(network, addr string) (net.Listener, error) {
			ln, err := net.Listen(network, addr)
			if err != nil {
				lnErr = err
				return nil, err
			}
			g.clientLn = ln
			return ln, nil
		},
		Handler:                 mux,
		ReleaseWebsocketPayload: true,
		MaxWriteBufferSize:      g.cfg.SendBufferLimit,
		MaxLoad:                 g.cfg.MaxOnline + 1024,
		ReadLimit:               2*g.cfg.ReceivePackLimit + 64<<10,
		// The HTTP phase: a client has this long to send its upgrade (the
		// WebSocket then reads with ReadDeadline, the upgrader's).
		KeepaliveTime: g.cfg.HandshakeTimeout,
	}
	if g.cfg.ClientTLSCert != "" {
		cert, err := llibtls.LoadX509KeyPair(g.cfg.ClientTLSCert, g.cfg.ClientTLSKey)
		if err != nil {
			_ = g.businessLn.Close()
			return fmt.Errorf("gateway client TLS (client_tls_cert %s, client_tls_key %s): %w", g.cfg.ClientTLSCert, g.cfg.ClientTLSKey, err)
		}
		conf.AddrsTLS = []string{g.cfg.ClientAddr}
		conf.TLSConfig = &llibtls.Config{Certificates: []llibtls.Certificate{cert}, MinVersion: llibtls.VersionTLS12}
	} else {
		conf.Addrs = []string{g.cfg.ClientAddr}
	}
	engine := nbhttp.NewEngine(conf)
	// Text frames are checked for UTF-8 in onMessage so that a bad one is
	// closed with 1007 (nbio's own check closes with 1002).
	engine.CheckUtf8 = func([]byte) bool { return true }
	g.raceHandoff(engine)
	if err := engine.Start(); err != nil {
		_ = g.businessLn.Close()
		if lnErr != nil {
			err = lnErr
		}
		return fmt.Errorf("gateway client listener %s: %w", g.cfg.ClientAddr, err)
	}
	g.engine = engine
	g.metrics.start = time.Now()
	g.wg.Add(2)
	go g.acceptBusinesses()
	go func() {
		defer g.wg.Done()
		g.metrics.run(g.stopTick)
	}()
	g.log.Info("gateway started", "client_addr", "ws://"+g.ClientAddr()+g.cfg.ClientPath, "business_addr", g.BusinessAddr(), "server_id", g.cfg.ServerID)
	return nil
}

func (g *Gateway) listenBusiness() (net.Listener, error) {
	ln, err := net.Listen("tcp", g.cfg.BusinessAddr)
	if err != nil {
		return nil, fmt.Errorf("gateway business listener %s: %w", g.cfg.BusinessAddr, err)
	}
	if g.cfg.BusinessTLSCA == "" {
		return ln, nil
	}
	tc, err := tlsconf.ServerConfig(g.cfg.BusinessTLSCA, g.cfg.BusinessTLSCert, g.cfg.BusinessTLSKey, true)
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("gateway business TLS: %w", err)
	}
	tc.VerifyConnection = g.verifyBusinessCert
	return tls.NewListener(ln, tc), nil
}

// CheckRevoked has the business listener (with mTLS) refuse certificates
// revoked reports on (by certs.Serial), as the server's revocation list
// does; call it before Start. A business connected before the revocation
// is cut off by CloseRevoked.
func (g *Gateway) CheckRevoked(revoked func(serial string) bool) { g.revoked = revoked }

// CloseRevoked closes the business connections whose certificate is
// revoked now (CheckRevoked's function), and returns how many; call it
// when the revocation list changed. The business reconnects, and its
// handshake is refused.
func (g *Gateway) CloseRevoked() int {
	if g.revoked == nil {
		return 0
	}
	g.mu.Lock()
	var cut []*business
	for b := range g.conns {
		tc, ok := b.conn.(*tls.Conn)
		if !ok {
			continue
		}
		cs := tc.ConnectionState() // safe beside the connection's reader
		if !cs.HandshakeComplete || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
			continue
		}
		if serial := certs.Serial(cs.VerifiedChains[0][0]); g.revoked(serial) {
			cut = append(cut, b)
		}
	}
	g.mu.Unlock()
	for _, b := range cut {
		g.log.Warn("business connection closed: its certificate is revoked", "remote", b.conn.RemoteAddr().String())
		b.close()
	}
	return len(cut)
}

// verifyBusinessCert admits only business certificates (croupier certs
// issue business) that are not revoked: an agent's or an operator's
// certificate from the same CA must not let its holder drive every player
// connection.
func (g *Gateway) verifyBusinessCert(cs tls.ConnectionState) error {
	id, err := certs.IdentityFromTLS(&cs)
	if err != nil {
		return fmt.Errorf("business listener: %w", err)
	}
	if id.Kind != certs.KindBusiness {
		return fmt.Errorf("business listener: a %s certificate (%s) cannot connect as a business process; issue one with \"croupier certs issue business --name NAME\"", id.Kind, id.Name)
	}
	if serial := certs.Serial(cs.VerifiedChains[0][0]); g.revoked != nil && g.revoked(serial) {
		return fmt.Errorf("business listener: the certificate of business %q (serial %s) is revoked", id.Name, serial)
	}
	return nil
}

// ClientAddr is the WebSocket listener's address (host:port).
func (g *Gateway) ClientAddr() string { return g.clientLn.Addr().String() }

// BusinessAddr is the business listener's address (host:port).
func (g *Gateway) BusinessAddr() string { return g.businessLn.Addr().String() }

// Run starts the gateway and serves until ctx is cancelled.
func (g *Gateway) Run(ctx context.Context) error {
	if err := g.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	g.Close()
	return nil
}

// Close stops accepting, closes every client and business connection and
// waits for the gateway's goroutines to exit.
func (g *Gateway) Close() {
	g.closeMu.Do(func() {
		if g.engine == nil {
			return // never started
		}
		_ = g.businessLn.Close()
		close(g.stopTick)
		g.mu.Lock()
		g.closed = true
		for b := range g.conns {
			b.close()
		}
		g.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = g.engine.Shutdown(ctx)
		g.wg.Wait()
	})
}

func (g *Gateway) acceptBusinesses() {
	defer g.wg.Done()
	for {
		conn, err := g.businessLn.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				g.log.Error("gateway: business accept", "err", err)
			}
			return
		}
		b := newBusiness(g, conn)
		g.mu.Lock()
		if g.closed {
			g.mu.Unlock()
			_ = conn.Close()
			return
		}
		g.conns[b] = struct{}{}
		g.wg.Add(2)
		g.mu.Unlock()
		go func() {
			defer g.wg.Done()
			b.writeLoop()
		}()
		go func() {
			defer g.wg.Done()
			b.serve()
			g.mu.Lock()
			delete(g.conns, b)
			g.mu.Unlock()
		}()
	}
}

// newUniqID returns 18 upper-case hex characters: serverId (1 byte), unix
// seconds (4) and a counter (4), as netsvr does.
func (g *Gateway) newUniqID() string {
	return fmt.Sprintf("%02X%08X%08X", g.cfg.ServerID, uint32(time.Now().Unix()), g.counter.Add(1))
}

func newRegisterID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// originAllowed applies Config.AllowedOrigins.
func (g *Gateway) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	for _, o := range g.cfg.AllowedOrigins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	if len(g.cfg.AllowedOrigins) == 0 {
		// Same host only, like browsers' own WebSocket servers by default.
		host := origin
		if i := strings.Index(host, "://"); i >= 0 {
			host = host[i+3:]
		}
		return strings.EqualFold(host, r.Host)
	}
	return false
}

func (g *Gateway) serveWS(w http.ResponseWriter, r *http.Request) {
	// The client has sent its whole request, so the handshake timeout (the
	// engine's deadline, counted from accept) has done its work: from here
	// the connection has the WebSocket's read deadline. Else a server slow
	// to get here and through the upgrade — whose upgrader moves the
	// deadline only after it has written 101 — could close a client that
	// has already been told it is upgraded.
	if res, ok := w.(*nbhttp.Response); ok && res.Parser != nil && res.Parser.Conn != nil {
		_ = res.Parser.Conn.SetReadDeadline(time.Now().Add(g.cfg.ReadDeadline))
	}
	if g.beforeUpgrade != nil {
		g.beforeUpgrade()
	}
	if r.URL.Path != g.cfg.ClientPath {
		http.NotFound(w, r)
		return
	}
	if !g.originAllowed(r) {
		http.Error(w, "origin not allowed: add it to the gateway's allowed_origins", http.StatusForbidden)
		return
	}
	if !g.ipLimit.allow(ratelimit.Source(r.RemoteAddr), time.Now()) { // an IPv6 client by its /64
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many connections from your address; retry later", http.StatusTooManyRequests)
		return
	}
	customID, ok := g.customUniqID(r.URL.RawQuery)
	if !ok {
		http.Error(w, "Custom uniqId wrong", http.StatusBadRequest)
		return
	}
	if g.online.Add(1) > int64(g.cfg.MaxOnline) {
		g.online.Add(-1)
		http.Error(w, "gateway full: max_online connections reached, try again later", http.StatusServiceUnavailable)
		return
	}
	ws, err := g.upgrader.Upgrade(w, r, nil)
	if err != nil {
		g.online.Add(-1) // the upgrader answered the request with the error
		return
	}
	c := &client{ws: ws, uniqID: customID}
	if c.uniqID == "" {
		c.uniqID = g.newUniqID()
	}
	// nbio runs this handler and the connection's close handling on the
	// connection's serial executor, so onClose sees the session set here
	// even when the client hangs up right after the 101.
	ws.SetSession(c)
	uniqID := c.uniqID // a business may rename c once it is in the hub
	g.metrics.meters[metricConnOpen].add(1)
	if displaced := g.hub.add(c); displaced != nil {
		// A custom uniqId that is online already: the newer connection wins.
		displaced.sendAndClose(nil)
	}
	if id := g.cfg.ConnOpenWorkerID; id > 0 {
		b := g.businesses.pick(int32(id))
		if b == nil {
			// netsvr's rule: without the ConnOpen worker no connection is
			// served.
			g.log.Debug("gateway: no business for ConnOpen; closing connection", "worker_id", id)
			c.closeWith(closeTryAgainLater, "no business registered for ConnOpen")
			return
		}
		xff := r.Header.Get("X-Forwarded-For")
		if xff == "" {
			xff, _, _ = net.SplitHostPort(r.RemoteAddr)
		}
		// The query and headers are the client's bytes, but proto3 string
		// fields must be UTF-8: invalid sequences become U+FFFD, so every
		// connection the gateway serves reaches the business (netsvr
		// refuses an upgrade only for a bad custom uniqId, which
		// customUniqID checks).
		b.trySend(g.marshalFrame(netsvr.Cmd_ConnOpen, &netsvr.ConnOpen{
			UniqId:        uniqID,
			RawQuery:      validUTF8(r.URL.RawQuery),
			SubProtocol:   websocketSubprotocols(r),
			XForwardedFor: validUTF8(xff),
		}))
	}
}

func websocketSubprotocols(r *http.Request) []string {
	var out []string
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(h, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, validUTF8(p))
			}
		}
	}
	return out
}

func (g *Gateway) onClose(ws *websocket.Conn, _ error) {
	c, ok := ws.Session().(*client)
	if !ok || c == nil {
		return
	}
	g.online.Add(-1)
	g.metrics.meters[metricConnClose].add(1)
	uniqID, session := g.hub.identity(c)
	g.hub.remove(c)
	if id := g.cfg.ConnCloseWorkerID; id > 0 {
		if b := g.businesses.pick(int32(id)); b != nil {
			b.trySend(g.marshalFrame(netsvr.Cmd_ConnClose, &netsvr.ConnClose{UniqId: uniqID, Session: session}))
		}
	}
}

var workerIDWrong = encodeWSFrame(opText, []byte("WorkerId wrong"))

func (g *Gateway) onMessage(ws *websocket.Conn, mt websocket.MessageType, data []byte) {
	c, ok := ws.Session().(*client)
	if !ok || c == nil {
		return
	}
	if mt == websocket.TextMessage && !utf8.Valid(data) {
		c.closeWith(closeInvalidPayload, "invalid UTF-8 in a text message")
		return
	}
	if bytes.Equal(data, PingMessage) {
		op := opText
		if mt == websocket.BinaryMessage {
			op = opBinary
		}
		g.metrics.meters[metricHeartbeat].add(1)
		c.write(encodeWSFrame(op, PongMessage))
		return
	}
	workerID := parseWorkerID(data)
	if workerID == 0 {
		c.write(workerIDWrong)
		return
	}
	if !g.limits.allow(workerID, time.Now()) {
		return // over the workerId's Limit group
	}
	b := g.businesses.pick(workerID)
	if b == nil {
		g.log.Debug("gateway: no business for workerId; message dropped", "worker_id", workerID)
		return
	}
	g.metrics.meters[metricTransferCount].add(1)
	g.metrics.meters[metricTransferBytes].add(int64(len(data)))
	uniqID, session := g.hub.identity(c)
	b.trySend(g.marshalFrame(netsvr.Cmd_Transfer, &netsvr.Transfer{UniqId: uniqID, Session: session, Data: data[3:]}))
}

// parseWorkerID reads the 3-digit workerId prefix; anything else is 0.
func parseWorkerID(data []byte) int32 {
	if len(data) < 3 {
		return 0
	}
	var n int32
	for _, ch := range data[:3] {
		if ch < '0' || ch > '9' {
			return 0
		}
		n = n*10 + int32(ch-'0')
	}
	return n
}

// raceHandoff makes nbio's connection handoff visible to the race detector.
// nbhttp accepts on its own goroutine and hands the connection to a poller
// goroutine through epoll, which the detector cannot see, so it reports the
// poller's first use of what the accept goroutine built (the connection, its
// TLS state, its HTTP parser) as a race. An atomic store when the connection
// is added to its poller and an atomic load before every read (poller
// goroutine) give the detector the edge the kernel already provides. The
// store is in nbio's own open hook, which runs once the connection is built
// and just before it is registered with epoll; nbhttp's OnOpen runs earlier,
// before the TLS connection and the parser exist, so an edge from there
// would not cover them. The read buffers come from a pool, as nbio's default
// allocator does.
func (g *Gateway) raceHandoff(engine *nbhttp.Engine) {
	const readBufferSize = 32 << 10
	g.readBufs.New = func() any {
		b := make([]byte, readBufferSize)
		return &b
	}
	engine.Engine.OnOpen(func(*nbio.Conn) { g.accepted.Add(1) })
	engine.OnReadBufferAlloc(func(*nbio.Conn) *[]byte {
		g.accepted.Load()
		return g.readBufs.Get().(*[]byte)
	})
	engine.OnReadBufferFree(func(_ *nbio.Conn, b *[]byte) {
		*b = (*b)[:cap(*b)]
		g.readBufs.Put(b)
	})
}
