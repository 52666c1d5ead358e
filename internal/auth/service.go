// Package auth authenticates operators: users with argon2id password
// hashes, short-lived JWT access tokens, rotating refresh tokens with reuse
// detection, and the gRPC/HTTP helpers that turn an `authorization: Bearer`
// credential into a principal.Principal carrying its role grants. It also
// administers users, custom roles and role bindings (UserService,
// RoleService); internal/rbac decides what the grants allow.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/audit"
	"github.com/croupier/croupier/internal/principal"
	"github.com/croupier/croupier/internal/ratelimit"
	"github.com/croupier/croupier/internal/rbac"
	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/streamcut"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Config configures a Service. Zero values pick the documented defaults.
type Config struct {
	Store *store.Store
	// Audit records logins and user and role changes; nil records nothing.
	Audit audit.Recorder
	// Issuer is the JWT iss claim; default "croupier".
	Issuer string
	// AccessTTL is the lifetime of access tokens; default 15 minutes.
	AccessTTL time.Duration
	// RefreshTTL is the lifetime of a refresh token (each rotation starts a
	// new one); default 30 days.
	RefreshTTL time.Duration
	// RefreshReuseGrace is how long after its exchange a refresh token may
	// be presented again and still rotate (two tabs or CLI processes
	// renewing one session at once) instead of revoking the session as
	// reused; default store.DefaultReuseGrace (10 s), negative: none.
	RefreshReuseGrace time.Duration
	// SigningKey, if set (at least 32 bytes), signs access tokens instead of
	// the key generated at first start and kept in the database. Every
	// server node must use the same key.
	SigningKey []byte
	// Argon2 are the parameters for new password hashes; default
	// DefaultArgon2.
	Argon2 Argon2Params
	// MaxConcurrentHashes bounds password hashes computed at once (each
	// takes Argon2.Memory); default 4. Further logins wait their turn.
	MaxConcurrentHashes int
	// LoginThrottle slows password guessing per username and per source
	// address (docs/security.md); zero values pick its defaults. Its clock
	// defaults to Now.
	LoginThrottle ratelimit.LoginConfig
	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// signingKeyID names the generated key in the database and in the JWT kid
// header; a configured key is "config". A later key rotation adds ids.
const (
	signingKeyID       = "default"
	configSigningKeyID = "config"
)

// Service authenticates operators and administers users and roles.
type Service struct {
	store   *store.Store
	audit   audit.Recorder
	cred    *Credentials
	signer  *signer // cred's
	refresh time.Duration
	grace   time.Duration // refresh reuse grace
	now     func() time.Time
	log     *slog.Logger

	grantsMu    sync.Mutex
	grantsCache map[string]cachedGrants
	certUsers   map[string]certUserInfo
	grantsGen   atomic.Uint64

	streams streamcut.Set[heldKey] // HoldStream's (streams.go)
}

// New returns a Service. Without Config.SigningKey it loads the signing key
// from the database, generating and storing it on the first start (the
// first node to store one wins; all nodes then read the same key).
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("auth: a store is required")
	}
	s := &Service{store: cfg.Store, audit: cfg.Audit, refresh: cfg.RefreshTTL, now: cfg.Now, log: cfg.Logger,
		grantsCache: map[string]cachedGrants{}, certUsers: map[string]certUserInfo{}}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.refresh <= 0 {
		s.refresh = 30 * 24 * time.Hour
	}
	s.grace = ReuseGrace(cfg.RefreshReuseGrace)
	issuer := cfg.Issuer
	if issuer == "" {
		issuer = "croupier"
	}
	cred, err := NewCredentials(ctx, CredentialsConfig{Store: cfg.Store, KeyID: signingKeyID, ConfigKeyID: configSigningKeyID,
		Issuer: issuer, SigningKey: cfg.SigningKey, AccessTTL: cfg.AccessTTL, Argon2: cfg.Argon2,
		MaxConcurrentHashes: cfg.MaxConcurrentHashes, LoginThrottle: cfg.LoginThrottle, Now: s.now})
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	s.cred, s.signer = cred, &cred.Issuer.s
	return s, nil
}

// LoginThrottle is the service's login throttle, for sharing it with the
// other server nodes (ratelimit.LoginThrottle.Share).
func (s *Service) LoginThrottle() *ratelimit.LoginThrottle { return s.cred.Logins }

// Tokens is what Login and Refresh return.
type Tokens struct {
	AccessToken  string
	RefreshToken string
	// ExpiresIn is the access token's lifetime.
	ExpiresIn time.Duration
	TokenType string
}

var usernameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.@-]{0,63}$`)

// CheckUsername enforces the username syntax.
func CheckUsername(u string) error {
	if !usernameRE.MatchString(u) {
		return fmt.Errorf("username %q is malformed: 1-64 letters, digits, '_', '.', '@', '-', starting with a letter or digit", u)
	}
	return nil
}

// Login checks the password and starts a login session. Every failure reads
// "invalid username or password" — whether the user exists or not, and at
// the same cost — except that a disabled user who knows the password is told
// the account is disabled.
//
// Repeated failures for a username or from a source address are throttled
// (see ratelimit.LoginThrottle): a throttled attempt is refused with
// RESOURCE_EXHAUSTED and a retry-after before the password is looked at.
// Every attempt is audited with the caller's address, except that of a run
// of refused attempts only the first of each wait is, so a flood cannot
// fill the audit log.
func (s *Service) Login(ctx context.Context, username, password string) (Tokens, error) {
	user := truncate(username, maxLoggedUsername)
	payload := map[string]string{"username": user}
	var toks Tokens
	err := s.auditedIf(ctx, "operator:"+user, audit.ActionLogin, payload, func() (bool, error) {
		return s.passwordAttempt(ctx, user, payload, func() (err error) {
			toks, err = s.login(ctx, username, password)
			return err
		})
	})
	return toks, err
}

// maxLoggedUsername is how much of a username reaches the throttle and the
// audit log; longer ones are malformed anyway.
const maxLoggedUsername = 64

// passwordAttempt runs try, which checks a password of user, under the
// login throttle, whoever asks — Login, or SetPassword checking the
// current password — so guesses cost the same through either. A throttled
// attempt is refused before try runs. try's refused credential counts as
// a failure, its success resets the username and the caller's address
// (Source), anything else counts for nothing.
//
// It adds the source, and for a refusal the limit ("throttled"), to the
// audit payload, and reports whether the attempt is to be audited: of a
// run of refusals only the first of each wait is, so a flood cannot fill
// the audit log.
func (s *Service) passwordAttempt(ctx context.Context, user string, payload map[string]string, try func() error) (record bool, err error) {
	source := Source(ctx)
	payload["source"] = source
	attempt, r := s.cred.Logins.Begin(user, source)
	if r != nil {
		if r.First {
			payload["throttled"] = r.Limit
		}
		return r.First, r.Err
	}
	err = try()
	switch {
	case err == nil:
		attempt.Succeeded()
	case authFailure(err):
		attempt.Failed()
	default:
		attempt.Abandoned()
	}
	return true, err
}

// authFailure reports whether err is a refused credential (as opposed to
// the database or the caller failing), which counts towards throttling:
// a failed login, or a wrong current password.
func authFailure(err error) bool {
	if info := apierr.Info(err); info != nil && info.GetCode() == CodeInvalidCredentials {
		return true
	}
	return status.Code(err) == codes.Unauthenticated
}

func (s *Service) login(ctx context.Context, username, password string) (Tokens, error) {
	badCreds := unauthenticated(CodeInvalidCredentials, "invalid username or password")
	if username == "" || len(username) > 64 || len(password) > MaxPasswordLen {
		return Tokens{}, badCreds
	}
	u, err := s.store.Users().Get(ctx, username)
	hash := u.PasswordHash
	switch {
	case errors.Is(err, store.ErrNotFound):
		hash = s.cred.DummyHash()
	case err != nil:
		return Tokens{}, err
	}
	ok, err := s.cred.VerifyPassword(ctx, password, hash)
	if err != nil {
		return Tokens{}, err
	}
	if !ok || u.Username == "" {
		return Tokens{}, badCreds
	}
	if u.Disabled {
		return Tokens{}, unauthenticated(CodeUserDisabled, "user "+username+" is disabled; ask an administrator")
	}
	return s.startSession(ctx, username)
}

// IssueTokens starts a login session for an existing, enabled user without
// a password: for trusted bootstrap code such as `croupier dev` writing a
// token into the client profile. Never expose it to callers.
func (s *Service) IssueTokens(ctx context.Context, username string) (Tokens, error) {
	u, err := s.store.Users().Get(ctx, username)
	if err != nil {
		return Tokens{}, err
	}
	if u.Disabled {
		return Tokens{}, unauthenticated(CodeUserDisabled, "user "+username+" is disabled")
	}
	return s.startSession(ctx, username)
}

func (s *Service) startSession(ctx context.Context, username string) (Tokens, error) {
	sid, err := randomID(16)
	if err != nil {
		return Tokens{}, err
	}
	rt, rhash, err := newRefreshToken()
	if err != nil {
		return Tokens{}, err
	}
	now := s.now()
	if err := s.store.Tokens().CreateSession(ctx, store.Session{ID: sid, Username: username, CreatedAt: now},
		store.RefreshToken{Hash: rhash, SessionID: sid, CreatedAt: now, ExpiresAt: now.Add(s.refresh)}); err != nil {
		return Tokens{}, err
	}
	return s.tokens(username, sid, rt)
}

func (s *Service) tokens(username, sid, refresh string) (Tokens, error) {
	at, _, err := s.signer.issue(username, sid)
	if err != nil {
		return Tokens{}, err
	}
	return Tokens{AccessToken: at, RefreshToken: refresh, ExpiresIn: s.signer.ttl, TokenType: "Bearer"}, nil
}

// Refresh spends the refresh token and returns a new pair in the same
// session. A token presented a second time, later than the reuse grace,
// revokes the session (someone else holds a copy) and is recorded as
// token.reuse.
func (s *Service) Refresh(ctx context.Context, refreshToken string) (Tokens, error) {
	if refreshToken == "" {
		return Tokens{}, unauthenticated(CodeTokenInvalid, "refresh_token is required")
	}
	next, nextHash, err := newRefreshToken()
	if err != nil {
		return Tokens{}, err
	}
	now := s.now()
	res, err := s.store.Tokens().Rotate(ctx, hashRefreshToken(refreshToken),
		store.RefreshToken{Hash: nextHash, CreatedAt: now, ExpiresAt: now.Add(s.refresh)}, now, s.grace)
	if err != nil {
		return Tokens{}, err
	}
	user := res.Session.Username
	switch res.Outcome {
	case store.Rotated, store.RotatedInGrace:
		return s.tokens(user, res.Session.ID, next)
	case store.RotateUnknown:
		return Tokens{}, unauthenticated(CodeTokenInvalid, "refresh token not recognised; log in again")
	case store.RotateExpired:
		return Tokens{}, unauthenticated(CodeTokenExpired, "refresh token expired; log in again")
	case store.RotateRevoked:
		return Tokens{}, unauthenticated(CodeTokenRevoked, "refresh token revoked ("+res.Session.RevokeReason+"); log in again")
	case store.RotateReused:
		err := unauthenticated(CodeTokenRevoked, "refresh token was already used: the session has been revoked in case it was stolen; log in again")
		s.record(ctx, audit.Entry{Actor: "operator:" + user, Action: audit.ActionTokenReuse,
			Payload: map[string]string{"username": user, "session": res.Session.ID}, Err: err})
		s.cutSession(res.Session.ID, store.RevokeReuse)
		return Tokens{}, err
	case store.RotateUserDisabled:
		return Tokens{}, unauthenticated(CodeUserDisabled, "user "+user+" is disabled")
	}
	return Tokens{}, fmt.Errorf("auth: unexpected rotate outcome %d", res.Outcome)
}

// Logout revokes the session of the refresh token: its refresh and access
// tokens stop working at once. Logging out twice is not an error.
func (s *Service) Logout(ctx context.Context, refreshToken string) error {
	if refreshToken == "" {
		return unauthenticated(CodeTokenInvalid, "refresh_token is required")
	}
	sess, err := s.store.Tokens().RevokeByRefreshToken(ctx, hashRefreshToken(refreshToken), store.RevokeLogout)
	if errors.Is(err, store.ErrNotFound) {
		return unauthenticated(CodeTokenInvalid, "refresh token not recognised")
	}
	if err != nil {
		return err
	}
	s.record(ctx, audit.Entry{Actor: "operator:" + sess.Username, Action: audit.ActionLogout,
		Payload: map[string]string{"session": sess.ID}})
	s.cutSession(sess.ID, store.RevokeLogout)
	return nil
}

// Authenticate verifies a bearer access token and returns the operator it
// names with the grants the operator holds now. A token that is expired,
// malformed, signed with another key, of a revoked session (logout, reuse,
// password change) or of a disabled user fails with UNAUTHENTICATED and a
// message saying which.
func (s *Service) Authenticate(ctx context.Context, bearer string) (principal.Principal, error) {
	claims, err := s.signer.verify(bearer)
	if err != nil {
		return principal.Principal{}, err
	}
	if err := s.sessionValid(ctx, claims.SessionID, claims.Subject); err != nil {
		return principal.Principal{}, err
	}
	grants, err := s.Grants(ctx, claims.Subject)
	if err != nil {
		return principal.Principal{}, err
	}
	return principal.Principal{Kind: principal.Operator, Name: claims.Subject, Grants: grants, SessionID: claims.SessionID}, nil
}

// Grants resolves the user's role bindings into grants with the roles'
// current permissions. Bindings of roles that no longer exist grant
// nothing.
//
// Results are cached for grantsTTL so the hot path (every call resolves its
// caller) does not query role bindings each time. A role change on this node
// invalidates the cache at once; other nodes see it within grantsTTL.
func (s *Service) Grants(ctx context.Context, username string) ([]principal.Grant, error) {
	gen := s.grantsGen.Load()
	s.grantsMu.Lock()
	c, ok := s.grantsCache[username]
	s.grantsMu.Unlock()
	if ok && c.gen == gen && s.now().Sub(c.at) < grantsTTL {
		return c.grants, nil
	}
	grants, err := s.loadGrants(ctx, username)
	if err != nil {
		return nil, err
	}
	s.grantsMu.Lock()
	if len(s.grantsCache) >= maxGrantsCache {
		clear(s.grantsCache)
	}
	s.grantsCache[username] = cachedGrants{grants: grants, gen: gen, at: s.now()}
	s.grantsMu.Unlock()
	return grants, nil
}

// invalidateGrants drops every cached grant set and certificate user
// (after any role or user change).
func (s *Service) invalidateGrants() { s.grantsGen.Add(1) }

// Operator is user name as an operator acting now: the grants its role
// bindings give it at this moment. It is refused (PERMISSION_DENIED) when
// the user is disabled or no longer exists. Approved calls run with it, so
// a requester who lost the right or the account since asking cannot have
// the call run for them.
func (s *Service) Operator(ctx context.Context, name string) (principal.Principal, error) {
	u, err := s.certUser(ctx, name)
	switch {
	case err != nil:
		return principal.Principal{}, err
	case !u.exists:
		return principal.Principal{}, apierr.New(codes.PermissionDenied, apierr.CodePermissionDenied, "user "+name+" no longer exists")
	case u.disabled:
		return principal.Principal{}, apierr.New(codes.PermissionDenied, CodeUserDisabled, "user "+name+" is disabled")
	}
	return principal.Principal{Kind: principal.Operator, Name: name, Grants: u.grants}, nil
}

// certUserInfo is what a certificate's user name resolves to.
type certUserInfo struct {
	exists, disabled bool
	grants           []principal.Grant
	gen              uint64
	at               time.Time
}

// certUser resolves the user an operator certificate names, cached like
// Grants: this runs on every call made with a certificate.
func (s *Service) certUser(ctx context.Context, name string) (certUserInfo, error) {
	gen := s.grantsGen.Load()
	s.grantsMu.Lock()
	c, ok := s.certUsers[name]
	s.grantsMu.Unlock()
	if ok && c.gen == gen && s.now().Sub(c.at) < grantsTTL {
		return c, nil
	}
	info := certUserInfo{gen: gen, at: s.now()}
	u, err := s.store.Users().Get(ctx, name)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return certUserInfo{}, err
	default:
		info.exists, info.disabled = true, u.Disabled
		if !u.Disabled {
			if info.grants, err = s.Grants(ctx, name); err != nil {
				return certUserInfo{}, err
			}
		}
	}
	s.grantsMu.Lock()
	if len(s.certUsers) >= maxGrantsCache {
		clear(s.certUsers)
	}
	s.certUsers[name] = info
	s.grantsMu.Unlock()
	return info, nil
}

const (
	grantsTTL      = time.Second
	maxGrantsCache = 10000
)

type cachedGrants struct {
	grants []principal.Grant
	gen    uint64
	at     time.Time
}

func (s *Service) loadGrants(ctx context.Context, username string) ([]principal.Grant, error) {
	bindings, err := s.store.Roles().Bindings(ctx, username)
	if err != nil || len(bindings) == 0 {
		return nil, err
	}
	var custom map[string][]string // loaded on first need
	out := make([]principal.Grant, 0, len(bindings))
	for _, b := range bindings {
		if r, ok := rbac.Builtin(b.Role); ok {
			out = append(out, rbac.Grant(b.Role, b.Scope, r.Permissions))
			continue
		}
		if custom == nil {
			roles, err := s.store.Roles().List(ctx)
			if err != nil {
				return nil, err
			}
			custom = make(map[string][]string, len(roles))
			for _, r := range roles {
				custom[r.Name] = r.Permissions
			}
		}
		if perms, ok := custom[b.Role]; ok {
			out = append(out, rbac.Grant(b.Role, b.Scope, perms))
		}
	}
	return out, nil
}

// Bootstrap makes sure user username exists and holds admin on "*",
// creating it with password if missing (an existing user's password is left
// alone). It reports whether it created the user. For `croupier dev` and
// first-start setup; it is recorded in the audit log as the system's doing.
func (s *Service) Bootstrap(ctx context.Context, username, password string) (bool, error) {
	sys := principal.Principal{Kind: principal.Anonymous, Name: "bootstrap", Grants: rbac.AdminGrants()}
	_, err := s.store.Users().Get(ctx, username)
	created := false
	switch {
	case errors.Is(err, store.ErrNotFound):
		if err := s.CreateUser(ctx, sys, username, password); err != nil {
			return false, err
		}
		created = true
	case err != nil:
		return false, err
	}
	if _, err := s.GrantRole(ctx, sys, username, rbac.AdminRole, "*"); err != nil {
		return created, err
	}
	return created, nil
}

// Prune deletes login sessions that expired or were revoked more than
// retention ago. Run it now and then (e.g. daily); keeping revoked sessions
// for a while lets a replayed token be reported as revoked, not unknown.
func (s *Service) Prune(ctx context.Context, retention time.Duration) (int64, error) {
	return s.store.Tokens().Prune(ctx, s.now().Add(-retention))
}

func (s *Service) record(ctx context.Context, e audit.Entry) {
	if s.audit == nil {
		return
	}
	if err := s.audit.Record(ctx, e); err != nil {
		s.log.ErrorContext(ctx, "audit record failed", "action", e.Action, "err", err)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// ReuseGrace is a configured refresh reuse grace: zero picks the default,
// negative none.
func ReuseGrace(d time.Duration) time.Duration {
	switch {
	case d == 0:
		return store.DefaultReuseGrace
	case d < 0:
		return 0
	}
	return d
}
