package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// accessClaims are the claims of an access token. Roles are deliberately
// not among them: grants are read from the database on every request, so
// revoking a role takes effect at once rather than when tokens expire.
type accessClaims struct {
	// SessionID (sid) names the login session; revoking it revokes the token.
	SessionID string `json:"sid"`
	jwt.RegisteredClaims
}

// refreshTokenPrefix marks Croupier refresh tokens so they are recognisable
// in logs and secret scanners, and cannot be confused with access tokens.
const refreshTokenPrefix = "crt_"

// newRefreshToken returns a random 256-bit opaque token and the hash under
// which it is stored.
func newRefreshToken() (token, hash string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("refresh token: %w", err)
	}
	token = refreshTokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	return token, hashRefreshToken(token), nil
}

// hashRefreshToken is the stored form of a refresh token: hex SHA-256. A
// plain hash suffices (no salt, no slow KDF) because the token has 256 bits
// of entropy: it cannot be guessed, only stolen, and a stolen database holds
// only hashes.
func hashRefreshToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// randomID returns n random bytes, hex-encoded, for session and token ids.
func randomID(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// signer issues and verifies access tokens with one HS256 key.
type signer struct {
	kid    string
	key    []byte
	issuer string
	ttl    time.Duration
	now    func() time.Time
}

func (s *signer) issue(username, sessionID string) (string, time.Time, error) {
	jti, err := randomID(16)
	if err != nil {
		return "", time.Time{}, err
	}
	now := s.now()
	exp := now.Add(s.ttl)
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, accessClaims{
		SessionID: sessionID,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: s.issuer, Subject: username, ID: jti,
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(exp),
		},
	})
	tok.Header["kid"] = s.kid
	signed, err := tok.SignedString(s.key)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign access token: %w", err)
	}
	return signed, exp, nil
}

// verify checks signature, algorithm, issuer and expiry and returns the
// claims, or an UNAUTHENTICATED status that says what is wrong.
func (s *signer) verify(raw string) (*accessClaims, error) {
	if strings.HasPrefix(raw, refreshTokenPrefix) {
		return nil, unauthenticated(CodeTokenInvalid, "a refresh token was sent as a bearer token; send the access token (refresh tokens are only for Refresh and Logout)")
	}
	claims := &accessClaims{}
	_, err := jwt.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		if kid, _ := t.Header["kid"].(string); kid != s.kid {
			return nil, fmt.Errorf("unknown signing key %q", kid)
		}
		return s.key, nil
	},
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(s.issuer),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(s.now),
	)
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenExpired):
		exp := "its expiry"
		if claims.ExpiresAt != nil {
			exp = claims.ExpiresAt.UTC().Format(time.RFC3339)
		}
		return nil, unauthenticated(CodeTokenExpired, "access token expired at "+exp+"; refresh it (croupier login --refresh) or log in again")
	default:
		return nil, unauthenticated(CodeTokenInvalid, "access token is invalid ("+jwtReason(err)+"); log in again")
	}
	if claims.Subject == "" || claims.SessionID == "" {
		return nil, unauthenticated(CodeTokenInvalid, "access token is invalid (missing subject or session); log in again")
	}
	return claims, nil
}

// jwtReason names what failed without echoing token contents.
func jwtReason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "bad signature"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "signed with an unknown key or algorithm"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "issued by someone else"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "not valid yet"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "missing expiry"
	}
	return "rejected"
}
