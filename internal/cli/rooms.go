package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/audit"
	"github.com/croupier/croupier/internal/cluster"
	"github.com/croupier/croupier/internal/config"
	"github.com/croupier/croupier/internal/live"
	"github.com/croupier/croupier/internal/ratelimit"
	"github.com/croupier/croupier/internal/roomcluster"
	"github.com/croupier/croupier/internal/rooms"
	"github.com/croupier/croupier/internal/rooms/roomsrpc"
	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/watch"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// roomsHostConfig says where the rooms system listens and what it stores in.
type roomsHostConfig struct {
	Addr, TLSCert, TLSKey string
	StoreDriver, StoreDSN string
	// DataDir holds the SQLite file when StoreDSN is empty (default
	// config.DefaultDataDir()).
	DataDir string
	// Store, when set, is the rooms' store, open and migrated
	// (openRoomsStore), which the caller keeps owning; nil: startRooms
	// opens the one StoreDriver/StoreDSN name and Stop closes it.
	Store *store.Store
	// Live configures the node's live streams.
	Live liveHostConfig
	// Bus joins the rooms to the gateway tier (nil: this node only).
	Bus *roomcluster.Node
	// Tier is the gateway tier's NATS node: the login and room password
	// throttles count the failures of every node on it (nil: this node's).
	Tier *cluster.Node
	// LoginThrottle slows password guessing on player accounts (zero:
	// the defaults).
	LoginThrottle ratelimit.LoginConfig
	// SignupsPerMinute and SignupBurst limit the users one address
	// creates (zero: the rooms' defaults).
	SignupsPerMinute float64
	SignupBurst      int
}

// roomsHost runs the rooms system (docs/rooms.md): its store, service and
// HTTP listener. It owns the serving goroutine; Stop ends it.
type roomsHost struct {
	closeStore func() error // closes the store startRooms opened (none given)
	audit      *audit.Log
	svc        *rooms.Service
	srv        *roomsrpc.Server
	live       *liveHost
	done       chan error
}

func startRooms(ctx context.Context, log *slog.Logger, cfg roomsHostConfig) (_ *roomsHost, err error) {
	st, closeStore := cfg.Store, func() error { return nil }
	if st == nil {
		if st, err = openRoomsStore(ctx, log, cfg.StoreDriver, cfg.StoreDSN, cfg.DataDir); err != nil {
			return nil, err
		}
		closeStore = st.Close
	}
	defer func() {
		if err != nil {
			_ = closeStore()
		}
	}()
	// The gateway's metrics (rooms and live), on the rooms listener's
	// GET /metrics (docs/observability.md).
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Room writes go to the operators' audit trail in the same database
	// (docs/access.md), and so do refused live publishes (rate limited:
	// anyone can attempt one; see liveAuditor).
	alog, err := audit.Open(ctx, audit.Config{Store: st, Logger: log.With("part", "audit")})
	if err != nil {
		return nil, err
	}
	rcfg := rooms.Config{Store: st, Logger: log, Registerer: reg, LoginThrottle: cfg.LoginThrottle,
		SignupsPerMinute: cfg.SignupsPerMinute, SignupBurst: cfg.SignupBurst}
	if cfg.Bus != nil {
		rcfg.Bus = cfg.Bus
	}
	svc, err := rooms.New(ctx, rcfg)
	if err != nil {
		_ = alog.Close()
		return nil, err
	}
	if cfg.Tier != nil {
		if err := svc.ShareThrottles(cfg.Tier.Conn(), cfg.Tier.ID()); err != nil {
			svc.Close()
			_ = alog.Close()
			return nil, err
		}
	}
	if cfg.Bus != nil {
		// Before serving: this node delivers every event from now on.
		sctx, cancel := context.WithTimeout(ctx, startTimeout)
		err := cfg.Bus.Start(sctx, svc, alog)
		cancel()
		if err != nil {
			svc.Close()
			_ = alog.Close()
			return nil, err
		}
	}
	cfg.Live.Audit = alog
	ln, err := startLive(ctx, log.With("part", "live"), cfg.Live, svc, reg)
	if err != nil {
		svc.Close()
		_ = alog.Close()
		return nil, err
	}
	svc.OnStreamKeyChange(ln.node.StreamKeyChanged)
	svc.OnLiveRevoked(ln.node.Revoke, ln.node.Concerns)
	svc.OnLiveStreams(ln.node.LiveStreams)
	mux := http.NewServeMux()
	roomsrpc.Mount(mux, svc, roomsrpc.Options{Logger: log, Audit: alog})
	mux.Handle(watch.Prefix, watch.Handler())
	mux.Handle(live.PlayPrefix, ln.node)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv, err := roomsrpc.Listen(roomsrpc.ServerConfig{Addr: cfg.Addr, TLSCert: cfg.TLSCert, TLSKey: cfg.TLSKey}, mux)
	if err != nil {
		ln.Close()
		svc.Close()
		_ = alog.Close()
		return nil, err
	}
	h := &roomsHost{closeStore: closeStore, audit: alog, svc: svc, srv: srv, live: ln, done: make(chan error, 1)}
	go func() { h.done <- srv.Serve() }()
	log.Info("rooms listening", "url", srv.URL())
	return h, nil
}

// openRoomsStore opens and migrates the rooms system's database: driver
// and dsn as configured, the SQLite file DATA_DIR/croupier.db when dsn is
// empty.
func openRoomsStore(ctx context.Context, log *slog.Logger, driver, dsn, dataDir string) (*store.Store, error) {
	if driver == store.DriverSQLite && dsn == "" {
		if dataDir == "" {
			dataDir = config.DefaultDataDir()
		}
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return nil, fmt.Errorf("data dir: %w", err)
		}
		dsn = filepath.Join(dataDir, "croupier.db")
	}
	st, err := store.Open(ctx, store.Config{Driver: driver, DSN: dsn, Logger: log})
	if err != nil {
		return nil, err
	}
	if err := st.Migrate(ctx); err != nil {
		_ = st.Close()
		return nil, err
	}
	return st, nil
}

// URL is the base URL of the rooms listener.
func (h *roomsHost) URL() string { return h.srv.URL() }

// Stop ends the streams, drains the listener until ctx ends and closes the
// store.
func (h *roomsHost) Stop(ctx context.Context) error {
	h.live.Close()
	h.svc.Close()
	err := h.srv.Shutdown(ctx)
	if serr := <-h.done; err == nil {
		err = serr
	}
	return errors.Join(err, h.audit.Close(), h.closeStore())
}

// demoRoomName is the room `croupier dev` creates on first start.
const demoRoomName = "Demo room"

// ensureDemoRoom creates the dev demo room (guests allowed, the demo video
// current) on first start and returns its id.
func ensureDemoRoom(ctx context.Context, svc *rooms.Service, baseURL string) (string, error) {
	list, err := svc.ListRooms(ctx, &clientv1.ListRoomsRequest{Search: demoRoomName, PageSize: 1})
	if err != nil {
		return "", err
	}
	if len(list.GetRooms()) > 0 {
		return list.GetRooms()[0].GetId(), nil
	}
	reg, err := svc.Register(ctx, "", &clientv1.RegisterRequest{Username: "demo-host", Password: randomPassword()})
	if status.Code(err) == codes.AlreadyExists {
		return "", fmt.Errorf("demo room: user demo-host exists but its room %q is gone; delete the data dir to start afresh", demoRoomName)
	}
	if err != nil {
		return "", err
	}
	host := rooms.Caller{UserID: reg.GetUser().GetId(), Username: reg.GetUser().GetUsername()}
	room, err := svc.CreateRoom(ctx, host, &clientv1.CreateRoomRequest{Name: demoRoomName,
		Settings: &clientv1.RoomSettings{AllowGuests: true}})
	if err != nil {
		return "", err
	}
	id := room.GetRoom().GetId()
	mv, err := svc.AddMovie(ctx, host, &clientv1.AddMovieRequest{RoomId: id, Url: baseURL + watch.DemoVideoPath, Title: "Demo video"})
	if err != nil {
		return "", err
	}
	if _, err := svc.SetCurrentMovie(ctx, host, &clientv1.SetCurrentMovieRequest{RoomId: id, MovieId: mv.GetMovie().GetId()}); err != nil {
		return "", err
	}
	return id, nil
}

// devLiveNodeID is `croupier dev`'s live node id. Lease holders are named
// by it, and a node that finds its own id in a lease it did not take
// (its previous process crashed within the lease's TTL) takes the lease
// over, so it must not change across restarts as the server's cluster id
// (hostname-pid) does (docs/live.md).
const devLiveNodeID = "dev"

// devLiveConfig is the live configuration of `croupier dev`: ingest on
// rtmpAddr, the leases in the dev server's NATS (bus; nil: in memory).
func devLiveConfig(rtmpAddr string, bus *cluster.Node) liveHostConfig {
	l := liveHostConfig{RTMPAddr: rtmpAddr, NodeID: devLiveNodeID}
	if bus != nil {
		l.JetStream = bus.JetStream()
	}
	return l
}

// startDemoRooms runs the rooms system for `croupier dev` on the dev
// SQLite database, with the demo room, on the gateway tier (nil: this
// node only); the live leases live in the dev server's NATS (bus; nil:
// none).
func startDemoRooms(ctx context.Context, log *slog.Logger, addr, rtmpAddr, dbPath string, bus *cluster.Node, tier *gatewayTier) (string, func(context.Context) error, error) {
	if addr == "" {
		return `disabled (--rooms-addr "")`, func(context.Context) error { return nil }, nil
	}
	hcfg := roomsHostConfig{Addr: addr, StoreDriver: store.DriverSQLite, StoreDSN: dbPath, Live: devLiveConfig(rtmpAddr, bus)}
	if tier != nil {
		hcfg.Bus = tier.node
	}
	h, err := startRooms(ctx, log, hcfg)
	if err != nil {
		return "", nil, fmt.Errorf("rooms: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	id, err := ensureDemoRoom(cctx, h.svc, h.URL())
	if err != nil {
		_ = h.Stop(context.Background())
		if info := apierr.Info(err); info != nil {
			return "", nil, fmt.Errorf("demo room: %s", info.GetMessage())
		}
		return "", nil, fmt.Errorf("demo room: %w", err)
	}
	note := fmt.Sprintf("%s  (ClientService; demo room %s, guests welcome)\n  watch page    %s%s#/room/%s", h.URL(), id, h.URL(), watch.Prefix, id)
	if a := h.live.node.RTMPAddr(); a != "" {
		k, err := h.svc.CreatorStreamKey(cctx, id, "main")
		if err != nil {
			_ = h.Stop(context.Background())
			return "", nil, fmt.Errorf("demo room stream key: %w", err)
		}
		note += fmt.Sprintf("\n  live ingest   rtmp://%s/%s/%s  (a fresh key each start; docs/live.md)", a, id, k.GetKey())
	}
	return note, h.Stop, nil
}
