// Package cluster is the bus that lets several croupier nodes act as one:
// a NATS connection (to an embedded server on loopback, optionally routed
// to other embedded servers, or to an external NATS cluster), the node's
// identity, membership in a JetStream KV bucket with a TTL, and
// request/reply helpers that carry the caller's deadline.
//
// Durable facts stay in the store (PostgreSQL); NATS carries only
// notifications and forwarded calls, so a NATS restart loses nothing that
// is not re-sent. See docs/cluster.md.
//
// Ownership: Node owns the embedded server, the connection and the
// heartbeat goroutine; Close stops them in that reverse order.
package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config says how a node joins the bus. The zero value (plus DataDir) runs
// an embedded single-node NATS server with no listener at all: the node
// reaches it in-process, so nothing is exposed.
type Config struct {
	// NodeID names this node in the cluster; it must be unique and stable
	// across restarts. Empty: the host name plus the process id.
	NodeID string
	// DataDir holds the embedded server's JetStream files (DataDir/nats).
	// Empty: JetStream lives in memory (tests).
	DataDir string

	// URL points at an external NATS cluster ("nats://a:4222,nats://b:4222").
	// When set, no embedded server runs.
	URL string
	// CredsFile is a NATS user credentials file (external NATS).
	CredsFile string
	// TLS secures the connection to an external NATS (nil: plain).
	TLS *tls.Config

	// Listen is the embedded server's client address; empty (default):
	// no client listener. Only other processes need one (a node with
	// --nats external pointing at this one).
	Listen string
	// Token authenticates clients on Listen and routes, and is presented
	// to an external NATS; TokenFile holds it (see ReadToken). An
	// embedded server that listens requires one: with neither set it is
	// DataDir/nats.token, generated on first start. Never logged.
	Token     string
	TokenFile string
	// ClusterName and ClusterListen enable routes: the embedded server
	// listens for other embedded servers on ClusterListen and dials Routes.
	ClusterName   string
	ClusterListen string
	Routes        []string
	// Replicas for the membership bucket (1 without routes; up to 3).
	Replicas int

	// MembersBucket is the membership bucket (default croupier_nodes, the
	// control tier's; gateway nodes use their own so that servers do not
	// count them).
	MembersBucket string

	// MemberTTL is how long a node stays listed after its last heartbeat
	// (default 15 s); heartbeats go out every MemberTTL/3.
	MemberTTL time.Duration

	Logger *slog.Logger
}

const (
	membersBucket  = "croupier_nodes"
	defaultTTL     = 15 * time.Second
	maxNodeIDBytes = 64
)

// Node is one member of the cluster bus.
type Node struct {
	cfg Config
	log *slog.Logger
	srv *server.Server // nil with an external NATS
	// listens: srv has a client listener (Listen, or routes).
	listens bool
	// storeDir holds JetStream files; tempStore: made by Start, removed by Close.
	storeDir  string
	tempStore bool
	nc        *nats.Conn
	js        jetstream.JetStream
	kv        jetstream.KeyValue
	// ctx is the node's lifetime: heartbeats and forwarded calls end
	// with it.
	ctx  context.Context
	stop context.CancelFunc
	// mu guards closed, so no handler joins wg once Close waits on it.
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup

	// seen is the membership bucket as this node's watcher follows it:
	// each member's last heartbeat (the stream's timestamp for keys
	// replayed at start, this node's clock for live updates). Members
	// reads it instead of listing the bucket: a listing creates and
	// deletes a JetStream consumer, which in a routed cluster is two
	// proposals to the meta group, replicated and written to every
	// node's disk — each node did that every second.
	seenMu sync.Mutex
	seen   map[string]time.Time
}

// track adds one goroutine to wg unless the node is closing.
func (n *Node) track() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false
	}
	n.wg.Add(1)
	return true
}

// halt stops the heartbeat and the handlers and waits for them.
func (n *Node) halt() {
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	n.stop()
	n.wg.Wait()
}

// Start connects the node to the bus (starting the embedded server first
// when cfg.URL is empty), registers it in the membership bucket and starts
// its heartbeat. It returns once the node is listed.
func Start(ctx context.Context, cfg Config) (_ *Node, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.NodeID == "" {
		h, _ := os.Hostname()
		cfg.NodeID = fmt.Sprintf("%s-%d", h, os.Getpid())
	}
	if err := checkNodeID(cfg.NodeID); err != nil {
		return nil, err
	}
	if cfg.MemberTTL <= 0 {
		cfg.MemberTTL = defaultTTL
	}
	if cfg.MemberTTL < time.Second {
		return nil, fmt.Errorf("cluster: member TTL %v is below 1s; raise it", cfg.MemberTTL)
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.MembersBucket == "" {
		cfg.MembersBucket = membersBucket
	}
	n := &Node{cfg: cfg, log: cfg.Logger.With("component", "cluster", "node", cfg.NodeID)}
	n.ctx, n.stop = context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	embedded := cfg.URL == ""
	token, err := resolveToken(cfg, embedded, cfg.Listen != "" || cfg.ClusterName != "" || len(cfg.Routes) > 0)
	if err != nil {
		return nil, err
	}
	url := cfg.URL
	if embedded {
		n.storeDir = filepath.Join(cfg.DataDir, "nats")
		if cfg.DataDir == "" {
			// Tests: a private directory, removed by Close.
			if n.storeDir, err = os.MkdirTemp("", "croupier-nats-"); err != nil {
				return nil, err
			}
			n.tempStore = true
		}
		if n.srv, err = startEmbedded(cfg, n.storeDir, token); err != nil {
			return nil, err
		}
		n.listens = cfg.Listen != "" || cfg.ClusterName != "" || len(cfg.Routes) > 0
		url = n.srv.ClientURL()
	}
	opts := []nats.Option{
		nats.Name("croupier " + cfg.NodeID),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				n.log.Warn("cluster bus disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { n.log.Info("cluster bus reconnected", "url", c.ConnectedUrlRedacted()) }),
	}
	if n.srv != nil {
		// The node's own connection to its embedded server is an
		// in-process pipe, not loopback TCP: every message a node sends or
		// receives crossed that socket twice (a write and a read syscall and
		// a wake-up on each side), which was a large part of a forwarded
		// call's cost (docs/cluster.md, "Cost of a node").
		opts = append(opts, nats.InProcessServer(n.srv))
	}
	if token != "" {
		opts = append(opts, nats.Token(token))
	}
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if cfg.TLS != nil {
		opts = append(opts, nats.Secure(cfg.TLS))
	}
	if n.nc, err = nats.Connect(url, opts...); err != nil {
		return nil, fmt.Errorf("cluster: connect to NATS at %s: %w", url, err)
	}
	if n.js, err = jetstream.New(n.nc); err != nil {
		return nil, fmt.Errorf("cluster: jetstream: %w", err)
	}
	if n.kv, err = n.createBucket(ctx); err != nil {
		return nil, err
	}
	if err = n.register(ctx); err != nil {
		return nil, fmt.Errorf("cluster: register node %s: %w", cfg.NodeID, err)
	}
	n.seen = map[string]time.Time{}
	// The watch lives as long as the node (its context also ends the
	// subscription), not the start's ctx.
	w, err := n.kv.WatchAll(n.ctx, jetstream.MetaOnly())
	if err != nil {
		return nil, fmt.Errorf("cluster: watch the membership bucket: %w", err)
	}
	// The current keys first, so Members answers as soon as Start returns.
	for replayed := false; !replayed; {
		select {
		case <-ctx.Done():
			_ = w.Stop()
			return nil, ctx.Err()
		case <-time.After(time.Until(startDeadline(ctx))):
			_ = w.Stop()
			return nil, errors.New("cluster: the membership bucket's keys did not arrive within the start deadline")
		case e, ok := <-w.Updates():
			switch {
			case !ok:
				return nil, errors.New("cluster: the membership watch closed while starting")
			case e == nil:
				replayed = true
			default:
				n.applyMember(e, e.Created())
			}
		}
	}
	if !n.track() {
		_ = w.Stop()
		return nil, errors.New("cluster: node closed while starting")
	}
	go n.followMembers(n.ctx, w)
	if n.track() {
		go n.heartbeats(n.ctx)
	}
	return n, nil
}

// followMembers applies the membership bucket's live updates to n.seen
// until the node closes.
func (n *Node) followMembers(ctx context.Context, w jetstream.KeyWatcher) {
	defer n.wg.Done()
	defer func() {
		_ = w.Stop()
		// Unblock a delivery caught sending when we stopped reading (the
		// watcher's channel holds 256; nothing is delivered after Stop).
		for {
			select {
			case _, ok := <-w.Updates():
				if !ok {
					return
				}
			default:
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e != nil { // nil: the end of a replay after a consumer reset
				n.applyMember(e, time.Now())
			}
		}
	}
}

func (n *Node) applyMember(e jetstream.KeyValueEntry, at time.Time) {
	n.seenMu.Lock()
	defer n.seenMu.Unlock()
	if e.Operation() == jetstream.KeyValuePut {
		n.seen[e.Key()] = at
	} else {
		delete(n.seen, e.Key())
	}
}

// createBucket retries while a routed cluster elects its JetStream meta
// leader (a few seconds after the servers meet).
func (n *Node) createBucket(ctx context.Context) (jetstream.KeyValue, error) {
	deadline := startDeadline(ctx)
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		kv, err := n.js.CreateOrUpdateKeyValue(cctx, jetstream.KeyValueConfig{
			Bucket: n.cfg.MembersBucket, TTL: n.cfg.MemberTTL, Replicas: n.cfg.Replicas,
			Storage: jetstream.MemoryStorage, Description: "croupier cluster members",
		})
		cancel()
		if err == nil {
			return kv, nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return nil, fmt.Errorf("cluster: membership bucket: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// startDeadline bounds the start's retries: the caller's deadline, or 30 s
// without one.
func startDeadline(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(30 * time.Second)
}

// register writes the node's first membership key, retrying while the
// bucket's stream has no leader yet ("no response from stream": a routed
// cluster under load elects it a moment after the bucket exists).
func (n *Node) register(ctx context.Context) error {
	deadline := startDeadline(ctx)
	for {
		err := n.heartbeat(ctx)
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// startEmbedded starts the node's NATS server. Without cfg.Listen it
// accepts no client connections (the node's own is in-process); whatever
// it does accept over the network — clients, routes — must present token.
func startEmbedded(cfg Config, storeDir, token string) (*server.Server, error) {
	routed := cfg.ClusterName != "" || len(cfg.Routes) > 0
	opts := &server.Options{
		ServerName: cfg.NodeID,
		// nats-server starts routing only once its client listener is up
		// (StartRouting waits for it; with DontListen it never starts), so
		// a routed server listens on a kernel-chosen loopback port, which
		// the token guards like any listener.
		DontListen: cfg.Listen == "" && !routed,
		NoSigs:     true,
		NoLog:      true,
		JetStream:  true,
		StoreDir:   storeDir,
	}
	if !opts.DontListen {
		var err error
		if opts.Host, opts.Port, err = splitHostPort(cfg.Listen, "127.0.0.1"); err != nil {
			return nil, fmt.Errorf("cluster: listen address %q: %w", cfg.Listen, err)
		}
	}
	if token != "" {
		opts.Authorization = token
	}
	if routed {
		if cfg.ClusterName == "" {
			return nil, errors.New("cluster: routes need a cluster name (--nats-cluster-name)")
		}
		ch, cp, err := splitHostPort(cfg.ClusterListen, "127.0.0.1")
		if err != nil {
			return nil, fmt.Errorf("cluster: cluster listen address %q: %w", cfg.ClusterListen, err)
		}
		if token == "" {
			return nil, errors.New("cluster: routes need a token (--nats-token-file)")
		}
		// Routes authenticate both ways: this server requires the token
		// of routes it accepts, and presents it on those it dials (the
		// URLs below; implicit routes learnt by gossip use Cluster's).
		opts.Cluster = server.ClusterOpts{Name: cfg.ClusterName, Host: ch, Port: cp,
			Username: routeUser, Password: token}
		for i, r := range cfg.Routes {
			u, err := url.Parse(r)
			if err != nil || u.Host == "" {
				// r itself: a route URL given with credentials must not reach a log.
				return nil, fmt.Errorf("cluster: route %d of %d is not a URL like nats://host:6222", i+1, len(cfg.Routes))
			}
			u.User = url.UserPassword(routeUser, token)
			opts.Routes = append(opts.Routes, u)
		}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("cluster: embedded NATS: %w", err)
	}
	go srv.Start()

	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("cluster: embedded NATS did not start within 10s")
	}
	return srv, nil
}

func splitHostPort(addr, defHost string) (string, int, error) {
	if addr == "" {
		return defHost, server.RANDOM_PORT, nil
	}
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, err
	}
	if h == "" {
		h = defHost
	}
	if port == 0 {
		port = server.RANDOM_PORT // nats-server reads 0 as "its default port"
	}
	return h, port, nil
}

func checkNodeID(id string) error {
	if len(id) > maxNodeIDBytes {
		return fmt.Errorf("cluster: node id is %d bytes; the limit is %d", len(id), maxNodeIDBytes)
	}
	for _, r := range id {
		ok := r == '-' || r == '_' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
		if !ok {
			return fmt.Errorf("cluster: node id %q may hold only letters, digits, '-' and '_'", id)
		}
	}
	return nil
}

func (n *Node) heartbeat(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := n.kv.Put(ctx, n.cfg.NodeID, []byte(time.Now().UTC().Format(time.RFC3339Nano)))
	return err
}

func (n *Node) heartbeats(ctx context.Context) {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.MemberTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := n.heartbeat(ctx); err != nil && ctx.Err() == nil {
				n.log.Warn("cluster heartbeat failed", "err", err)
			}
		}
	}
}

// ID is this node's identity.
func (n *Node) ID() string { return n.cfg.NodeID }

// Conn is the node's NATS connection (shared; do not close it).
func (n *Node) Conn() *nats.Conn { return n.nc }

// JetStream is the node's JetStream context.
func (n *Node) JetStream() jetstream.JetStream { return n.js }

// ClientURL is the embedded server's client URL: "" with an external
// NATS or without a client listener. Clients need the token too.
func (n *Node) ClientURL() string {
	if n.srv == nil || !n.listens {
		return ""
	}
	return n.srv.ClientURL()
}

// RouteURL is the embedded server's route URL for other servers' Routes
// ("" without routes).
func (n *Node) RouteURL() string {
	if n.srv == nil {
		return ""
	}
	a := n.srv.ClusterAddr()
	if a == nil {
		return ""
	}
	return "nats://" + a.String()
}

// Members lists the nodes whose heartbeat is younger than the member TTL,
// sorted by id, from this node's view of the membership bucket (no round
// trip). When that view may be stale — this node's own heartbeat has not
// reached it within the TTL, e.g. while the watch's consumer is recreated
// after the bucket's stream leader died — it lists the bucket instead.
func (n *Node) Members(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := time.Now()
	n.seenMu.Lock()
	at, ok := n.seen[n.cfg.NodeID]
	fresh := ok && now.Sub(at) < n.cfg.MemberTTL
	var keys []string
	for id, at := range n.seen {
		if now.Sub(at) < n.cfg.MemberTTL {
			keys = append(keys, id)
		}
	}
	n.seenMu.Unlock()
	if !fresh {
		return n.listMembers(ctx)
	}
	slices.Sort(keys)
	return keys, nil
}

// listMembers lists the membership bucket's keys (a JetStream consumer
// created and deleted: the slow path).
func (n *Node) listMembers(ctx context.Context) ([]string, error) {
	keys, err := n.kv.Keys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	slices.Sort(keys)
	return keys, nil
}

// Close deregisters the node, stops the heartbeat, drains the connection
// and shuts down the embedded server. Safe on a partly started node.
func (n *Node) Close() {
	n.halt()
	if n.kv != nil && n.nc != nil && n.nc.IsConnected() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = n.kv.Delete(ctx, n.cfg.NodeID)
		cancel()
	}
	if n.nc != nil {
		n.nc.Close()
	}
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
	}
	if n.tempStore {
		_ = os.RemoveAll(n.storeDir)
	}
}

// Kill stops the node abruptly, as a crash would: no deregistration, the
// embedded server stops without draining. Tests use it.
func (n *Node) Kill() {
	n.halt()
	if n.nc != nil {
		n.nc.Close()
	}
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
	}
	if n.tempStore {
		_ = os.RemoveAll(n.storeDir)
	}
}
