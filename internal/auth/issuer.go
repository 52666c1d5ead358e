package auth

import (
	"errors"
	"fmt"
	"time"
)

// AccessIssuer issues and verifies access tokens (HS256 JWTs naming a
// subject and a login session) for a user population other than operators:
// the rooms system's players (internal/rooms). It is the operator machinery
// with its own key id, key and issuer, so a token of one population is
// refused by the other.
type AccessIssuer struct{ s signer }

// NewAccessIssuer returns an issuer signing with key (at least 32 bytes)
// under kid, with the iss claim issuer and tokens living ttl.
func NewAccessIssuer(kid string, key []byte, issuer string, ttl time.Duration, now func() time.Time) (*AccessIssuer, error) {
	switch {
	case kid == "" || issuer == "":
		return nil, errors.New("an access issuer needs a key id and an issuer")
	case len(key) < 32:
		return nil, fmt.Errorf("the signing key must be at least 32 bytes, got %d", len(key))
	case ttl <= 0:
		return nil, fmt.Errorf("access token lifetime must be positive, got %s", ttl)
	}
	if now == nil {
		now = time.Now
	}
	return &AccessIssuer{s: signer{kid: kid, key: key, issuer: issuer, ttl: ttl, now: now}}, nil
}

// TTL is the lifetime of the tokens it issues.
func (a *AccessIssuer) TTL() time.Duration { return a.s.ttl }

// WithTTL is an issuer with the same key and issuer whose tokens live ttl
// (tokens of either verify with either); ttl must be positive.
func (a *AccessIssuer) WithTTL(ttl time.Duration) (*AccessIssuer, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("access token lifetime must be positive, got %s", ttl)
	}
	c := *a
	c.s.ttl = ttl
	return &c, nil
}

// Issue returns a signed token for subject in sessionID and its expiry.
func (a *AccessIssuer) Issue(subject, sessionID string) (string, time.Time, error) {
	return a.s.issue(subject, sessionID)
}

// Verify checks the token and returns its subject and session. Failures
// are UNAUTHENTICATED statuses with ErrorInfo TOKEN_EXPIRED or
// TOKEN_INVALID.
func (a *AccessIssuer) Verify(raw string) (subject, sessionID string, err error) {
	c, err := a.s.verify(raw)
	if err != nil {
		return "", "", err
	}
	return c.Subject, c.SessionID, nil
}

// NewRefreshToken returns a random opaque refresh token and the hash under
// which it is stored (see Service.Refresh for the rotation rules).
func NewRefreshToken() (token, hash string, err error) { return newRefreshToken() }

// HashRefreshToken is the stored form of a refresh token.
func HashRefreshToken(token string) string { return hashRefreshToken(token) }
