package rooms

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"github.com/croupier/croupier/internal/auth"
	"github.com/croupier/croupier/internal/ratelimit"
	"github.com/croupier/croupier/internal/store"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Service. Zero values pick the documented defaults.
type Config struct {
	Store *store.Store
	// AccessTTL is the lifetime of player access tokens; default 15 minutes.
	AccessTTL time.Duration
	// RefreshTTL is the lifetime of a refresh token; default 30 days.
	RefreshTTL time.Duration
	// RefreshReuseGrace: a spent refresh token presented again this soon
	// rotates again instead of revoking its session (auth.Config's field
	// of the same name); default 10 s, negative: none.
	RefreshReuseGrace time.Duration
	// GuestTTL is the lifetime of a guest's access token (guests have no
	// refresh token); default 24 hours.
	GuestTTL time.Duration
	// SigningKey (at least 32 bytes) signs player access tokens; default:
	// a key generated at first start and kept in the database under the
	// id "rooms", separate from the operators' key.
	SigningKey []byte
	// Argon2 are the parameters of new password hashes; default
	// auth.DefaultArgon2.
	Argon2 auth.Argon2Params
	// MaxConcurrentHashes bounds password hashes computed at once;
	// default 4.
	MaxConcurrentHashes int
	// LoginThrottle slows password guessing per username and address; a
	// second throttle with the same settings slows room password guessing
	// per room and user (a guest, who has no user yet: per room and
	// address).
	LoginThrottle ratelimit.LoginConfig
	// ChatPerSecond and DanmakuPerSecond are each user's message rates in
	// a room (bursts of the same size); defaults 10 and 5.
	ChatPerSecond    float64
	DanmakuPerSecond float64
	// ControlPerSecond is each user's rate of playback and playlist
	// changes in a room (play, pause, seek, rate, current movie; add,
	// remove, reorder movies), each a database write announced to every
	// member; burst of the same size; default 5.
	ControlPerSecond float64
	// SignupsPerMinute bounds the users one source address creates
	// (Register and GuestJoin; an IPv6 address counts as its /64), with
	// bursts of SignupBurst; defaults 20 and 20. Behind a proxy that hides
	// the clients' addresses every client shares one source: raise them.
	SignupsPerMinute float64
	SignupBurst      int
	// StreamQueue bounds the messages queued for one stream; a stream that
	// falls further behind is cut off. Default 1024 (at least 600: a
	// (re)connect queues up to 500 retained chat messages at once).
	StreamQueue int
	// SessionCheck is how often a node re-reads the sessions of its open
	// streams and ends those revoked on another node (on this node they
	// end at once); default 2 s.
	SessionCheck time.Duration
	// Bus orders room events across the gateway nodes of a cluster (see
	// Bus); nil: one node, events are delivered where they happen.
	Bus Bus
	// Registerer receives the rooms metrics (docs/observability.md); nil:
	// not exported.
	Registerer prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Service is the rooms system. It is safe for concurrent use.
type Service struct {
	st       *store.Rooms
	cred     *auth.Credentials
	issuer   *auth.AccessIssuer // cred's
	guests   *auth.AccessIssuer // cred's key, tokens living guestTTL
	refresh  time.Duration
	grace    time.Duration // refresh reuse grace
	guestTTL time.Duration
	rates    [limitKinds]rateSpec // by limitKind
	queue    int
	bus      Bus
	now      func() time.Time
	log      *slog.Logger
	hub      *hub
	chat     *chatLog
	live     liveHooks
	limits   *limits
	m        *metrics
	// playlists are the playlists read for delivered changes (playlistNews).
	playlists playlistReads
	// roomPasswords throttles wrong room passwords (checkRoomPassword).
	roomPasswords *ratelimit.LoginThrottle

	stopWatch sync.Once
	watchStop chan struct{} // closed by Close: watchSessions returns
	watchDone chan struct{} // closed when watchSessions has returned
}

// signingKeyID names the players' generated key in auth_signing_keys.
const signingKeyID = "rooms"

// tokenIssuer is the iss claim of player tokens; operator tokens carry
// "croupier" and are refused here.
const tokenIssuer = "croupier-rooms"

// New returns a Service.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("rooms: a store is required")
	}
	s := &Service{st: cfg.Store.Rooms(), refresh: cfg.RefreshTTL, guestTTL: cfg.GuestTTL,
		rates: [limitKinds]rateSpec{limitChat: {cfg.ChatPerSecond, cfg.ChatPerSecond}, limitDanmaku: {cfg.DanmakuPerSecond, cfg.DanmakuPerSecond},
			limitControl: {cfg.ControlPerSecond, cfg.ControlPerSecond}, limitSignup: {cfg.SignupsPerMinute / 60, float64(cfg.SignupBurst)}},
		queue: cfg.StreamQueue, bus: cfg.Bus,
		now: cfg.Now, log: cfg.Logger, m: newMetrics(cfg.Registerer)}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.refresh <= 0 {
		s.refresh = 30 * 24 * time.Hour
	}
	s.grace = auth.ReuseGrace(cfg.RefreshReuseGrace)
	if s.guestTTL <= 0 {
		s.guestTTL = 24 * time.Hour
	}
	for k, def := range [limitKinds]rateSpec{limitChat: {10, 10}, limitDanmaku: {5, 5}, limitControl: {5, 5}, limitSignup: {20.0 / 60, 20}} {
		r := &s.rates[k]
		if r.perSecond == 0 {
			r.perSecond = def.perSecond
		}
		if r.burst == 0 {
			r.burst = max(def.burst, r.perSecond) // a rate set alone: bursts of one second's
		}
		if r.perSecond < 0 || r.burst < 1 {
			return nil, fmt.Errorf("rooms: the %s rate must be positive with a burst of at least 1, got %v and %v", limitKind(k), r.perSecond, r.burst)
		}
	}
	if s.queue == 0 {
		s.queue = 1024
	}
	if s.queue < 600 {
		return nil, fmt.Errorf("rooms: stream queue %d is too small: at least 600 (a reconnect replays up to %d chat messages)", s.queue, chatKeep)
	}
	cred, err := auth.NewCredentials(ctx, auth.CredentialsConfig{Store: cfg.Store, KeyID: signingKeyID, ConfigKeyID: "rooms-config",
		Issuer: tokenIssuer, SigningKey: cfg.SigningKey, AccessTTL: cfg.AccessTTL, Argon2: cfg.Argon2,
		MaxConcurrentHashes: cfg.MaxConcurrentHashes, LoginThrottle: cfg.LoginThrottle, Now: s.now})
	if err != nil {
		return nil, fmt.Errorf("rooms: %w", err)
	}
	s.cred, s.issuer = cred, cred.Issuer
	tc := cfg.LoginThrottle
	if tc.Now == nil {
		tc.Now = s.now
	}
	if s.roomPasswords, err = ratelimit.NewLoginThrottle(tc); err != nil {
		return nil, fmt.Errorf("rooms: room password throttle: %w", err)
	}
	if s.guests, err = cred.Issuer.WithTTL(s.guestTTL); err != nil {
		return nil, fmt.Errorf("rooms: guest tokens: %w", err)
	}
	s.hub = newHub(s)
	s.limits = newLimits(s.rates)
	s.chat = newChatLog(s.st, s.log)
	every := cfg.SessionCheck
	if every <= 0 {
		every = defaultSessionCheck
	}
	s.watchStop, s.watchDone = make(chan struct{}), make(chan struct{})
	go s.watchSessions(every, s.watchStop, s.watchDone)
	return s, nil
}

// Close ends every open stream (with UNAVAILABLE, so clients reconnect
// elsewhere) and stores the chat messages still queued, for a graceful
// shutdown.
func (s *Service) Close() {
	s.stopWatch.Do(func() { close(s.watchStop) })
	<-s.watchDone
	s.hub.closeAll()
	s.chat.close()
}

// Now is the service's clock in Unix milliseconds (fractional), for the
// time endpoints.
func (s *Service) Now() float64 {
	t := s.now()
	return float64(t.UnixNano()) / 1e6
}

func (s *Service) nowMs() int64 { return s.now().UnixMilli() }

// ServerTime answers GetServerTime; receivedAt is when the transport read
// the request.
func (s *Service) ServerTime(clientTime int64, receivedAt float64) *clientv1.GetServerTimeResponse {
	return &clientv1.GetServerTimeResponse{ClientTime: clientTime, ServerReceiveTime: receivedAt, ServerSendTime: s.Now()}
}
