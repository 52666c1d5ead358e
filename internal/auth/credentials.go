package auth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/croupier/croupier/internal/ratelimit"
	"github.com/croupier/croupier/internal/store"
)

// CredentialsConfig configures the password and token machinery of one
// user population: operators (Service) or the rooms system's players
// (internal/rooms). Zero values pick the defaults.
type CredentialsConfig struct {
	Store *store.Store
	// KeyID names the population's generated signing key in the database
	// (auth_signing_keys) and in its tokens' kid header; ConfigKeyID is the
	// kid of a configured SigningKey. Issuer is the tokens' iss claim.
	// Populations with different keys and issuers refuse each other's
	// tokens.
	KeyID, ConfigKeyID, Issuer string
	// SigningKey, if set (at least 32 bytes), signs access tokens instead
	// of the key generated at first start and kept in the database.
	SigningKey []byte
	// AccessTTL is the lifetime of access tokens; default 15 minutes.
	AccessTTL time.Duration
	// Argon2 are the parameters of new password hashes; default
	// DefaultArgon2.
	Argon2 Argon2Params
	// MaxConcurrentHashes bounds password hashes computed at once (each
	// takes Argon2.Memory); default 4. Further ones wait their turn.
	MaxConcurrentHashes int
	// LoginThrottle slows password guessing per username and per source
	// address; its clock defaults to Now.
	LoginThrottle ratelimit.LoginConfig
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Credentials hashes and checks passwords (bounded in number at once),
// throttles logins and issues access tokens for one user population.
type Credentials struct {
	// Issuer signs and verifies the population's access tokens.
	Issuer *AccessIssuer
	// Logins throttles password guessing.
	Logins  *ratelimit.LoginThrottle
	argon   Argon2Params
	hashSem chan struct{}
	// dummyHash is verified against when a login names an unknown user, so
	// that unknown and known users take the same time to refuse.
	dummyHash string
}

// NewCredentials returns the population's credentials. Without
// cfg.SigningKey it loads the signing key from the database, generating
// and storing it on the first start (the first node to store one wins;
// all nodes then read the same key).
func NewCredentials(ctx context.Context, cfg CredentialsConfig) (*Credentials, error) {
	if cfg.Store == nil {
		return nil, errors.New("a store is required")
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	c := &Credentials{argon: cfg.Argon2}
	if c.argon == (Argon2Params{}) {
		c.argon = DefaultArgon2
	}
	n := cfg.MaxConcurrentHashes
	if n <= 0 {
		n = 4
	}
	c.hashSem = make(chan struct{}, n)
	tc := cfg.LoginThrottle
	if tc.Now == nil {
		tc.Now = now
	}
	var err error
	if c.Logins, err = ratelimit.NewLoginThrottle(tc); err != nil {
		return nil, err
	}
	kid, key := cfg.ConfigKeyID, cfg.SigningKey
	if key == nil {
		fresh := make([]byte, 32)
		if _, err := rand.Read(fresh); err != nil {
			return nil, fmt.Errorf("generate signing key: %w", err)
		}
		if key, err = cfg.Store.Tokens().EnsureSigningKey(ctx, cfg.KeyID, fresh); err != nil {
			return nil, fmt.Errorf("load signing key: %w", err)
		}
		kid = cfg.KeyID
	}
	access := cfg.AccessTTL
	if access <= 0 {
		access = 15 * time.Minute
	}
	if c.Issuer, err = NewAccessIssuer(kid, key, cfg.Issuer, access, now); err != nil {
		return nil, err
	}
	if c.dummyHash, err = HashPassword("croupier-dummy-password", c.argon); err != nil {
		return nil, err
	}
	return c, nil
}

// DummyHash is a hash to check a password against when the user does not
// exist, so that refusing an unknown user costs what refusing a known one
// does.
func (c *Credentials) DummyHash() string { return c.dummyHash }

// VerifyPassword runs VerifyPassword under the hashing semaphore.
func (c *Credentials) VerifyPassword(ctx context.Context, pw, hash string) (bool, error) {
	select {
	case c.hashSem <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	defer func() { <-c.hashSem }()
	ok, err := VerifyPassword(pw, hash)
	if err != nil {
		return false, fmt.Errorf("stored password hash: %w", err)
	}
	return ok, nil
}

// HashPassword runs HashPassword, with the configured parameters, under
// the hashing semaphore.
func (c *Credentials) HashPassword(ctx context.Context, pw string) (string, error) {
	select {
	case c.hashSem <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-c.hashSem }()
	return HashPassword(pw, c.argon)
}
