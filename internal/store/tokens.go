package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// Session is one login: the family of refresh tokens that descend from it by
// rotation. Access tokens name their session, so revoking it ends them too.
type Session struct {
	ID        string
	Username  string
	CreatedAt time.Time
	// ExpiresAt is the expiry of the family's newest refresh token.
	ExpiresAt    time.Time
	RevokedAt    time.Time
	RevokeReason string
}

// RefreshToken is a stored refresh token. Hash is the hex SHA-256 of the
// opaque token; the token itself is never stored.
type RefreshToken struct {
	Hash      string
	SessionID string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Revoke reasons written by Rotate and Logout.
const (
	RevokeReuse  = "refresh token reused"
	RevokeLogout = "logged out"
)

// RotateOutcome says what Rotate did with the presented refresh token.
type RotateOutcome int

const (
	// Rotated: the token was valid; it is now used and Next is stored.
	Rotated RotateOutcome = iota
	// RotateUnknown: no such token (never issued, or pruned).
	RotateUnknown
	// RotateExpired: the token is past its expiry.
	RotateExpired
	// RotateRevoked: the token's session was revoked earlier.
	RotateRevoked
	// RotateReused: the token had already been exchanged. Someone holds a
	// copy, so the whole session was revoked just now.
	RotateReused
	// RotateUserDisabled: the session's user is disabled.
	RotateUserDisabled
	// RotatedInGrace: the token had been exchanged, but within the reuse
	// grace: Next is stored as well, and the session lives on.
	RotatedInGrace
)

// DefaultReuseGrace is how long after its exchange a refresh token may be
// presented again without revoking its session (see Tokens.Rotate).
const DefaultReuseGrace = 10 * time.Second

// spentAgain decides a token presented after its exchange at usedAt (both
// in ms): within grace it is a concurrent renewal by the same holder.
func spentAgain(usedAt, now int64, grace time.Duration) RotateOutcome {
	if grace > 0 && now-usedAt < grace.Milliseconds() {
		return RotatedInGrace
	}
	return RotateReused
}

// spend marks the unspent token oldHash of table (refresh_tokens or
// room_refresh_tokens) used at now: Rotated, or, when a concurrent exchange
// spent it first, what spentAgain says of a token spent just now.
func spend(ctx context.Context, tx *sql.Tx, table, oldHash string, now int64, grace time.Duration) (RotateOutcome, error) {
	const op = "rotate refresh token"
	upd, err := tx.ExecContext(ctx, `UPDATE `+table+` SET used_at = $1 WHERE token_hash = $2 AND used_at = 0`, now, oldHash)
	if err != nil {
		return 0, dbErr(ctx, op, err)
	}
	n, err := upd.RowsAffected()
	if err != nil {
		return 0, dbErr(ctx, op, err)
	}
	if n == 0 {
		return spentAgain(now, now, grace), nil
	}
	return Rotated, nil
}

// RotateResult reports Rotate's outcome and the session it concerned.
type RotateResult struct {
	Outcome RotateOutcome
	// Session is the token's session as it is after Rotate (zero for
	// RotateUnknown).
	Session Session
}

// Tokens stores login sessions, refresh tokens and token signing keys.
type Tokens struct{ s *Store }

// Tokens returns the store of sessions, refresh tokens and signing keys.
func (s *Store) Tokens() *Tokens { return &Tokens{s: s} }

// CreateSession stores a new session and its first refresh token.
// ErrNotFound if the user does not exist.
func (x *Tokens) CreateSession(ctx context.Context, sess Session, first RefreshToken) error {
	if sess.ID == "" || sess.Username == "" || first.Hash == "" {
		return invalid("a session needs an id, a username and a first refresh token")
	}
	return x.s.inTx(ctx, "create session", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx,
			`INSERT INTO auth_sessions (session_id, username, created_at, expires_at) VALUES ($1, $2, $3, $4)`,
			sess.ID, sess.Username, timeToMs(sess.CreatedAt), timeToMs(first.ExpiresAt))
		if err != nil {
			err = dbErr(ctx, "create session", err)
			if errors.Is(err, ErrNotFound) {
				return notFound("user %q", sess.Username)
			}
			return err
		}
		_, err = tx.ExecContext(ctx,
			`INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES ($1, $2, $3, $4)`,
			first.Hash, sess.ID, timeToMs(first.CreatedAt), timeToMs(first.ExpiresAt))
		return dbErr(ctx, "create session", err)
	})
}

// Rotate exchanges the refresh token whose hash is oldHash for next, in one
// transaction, judging expiry at now (the caller's clock, which also stamps
// next). Only a valid token rotates. A token that was already exchanged
// less than grace ago rotates again (RotatedInGrace): two clients sharing one
// session — browser tabs, CLI processes on one profile — that renew at the
// same moment must not end it. Presenting a spent token later revokes the
// whole session (RotateReused), because one of the two presenters is not
// the legitimate holder. Two concurrent exchanges of the same token are
// serialised by a conditional UPDATE: the second sees the token spent.
func (x *Tokens) Rotate(ctx context.Context, oldHash string, next RefreshToken, at time.Time, grace time.Duration) (RotateResult, error) {
	var res RotateResult
	err := x.s.inTx(ctx, "rotate refresh token", func(tx *sql.Tx) error {
		res = RotateResult{}
		var (
			sess                                          Session
			tokExpires, usedAt, created, expires, revoked int64
			disabled                                      bool
		)
		err := tx.QueryRowContext(ctx,
			`SELECT t.expires_at, t.used_at, s.session_id, s.username, s.created_at, s.expires_at, s.revoked_at, s.revoke_reason, u.disabled
			 FROM refresh_tokens t
			 JOIN auth_sessions s ON s.session_id = t.session_id
			 JOIN users u ON u.username = s.username
			 WHERE t.token_hash = $1`, oldHash).
			Scan(&tokExpires, &usedAt, &sess.ID, &sess.Username, &created, &expires, &revoked, &sess.RevokeReason, &disabled)
		if errors.Is(err, sql.ErrNoRows) {
			res.Outcome = RotateUnknown
			return nil
		}
		if err != nil {
			return dbErr(ctx, "rotate refresh token", err)
		}
		sess.CreatedAt, sess.ExpiresAt, sess.RevokedAt = msToTime(created), msToTime(expires), msToTime(revoked)
		res.Session = sess
		now := timeToMs(at)
		outcome := Rotated
		if usedAt != 0 {
			outcome = spentAgain(usedAt, now, grace)
		}
		switch {
		case revoked != 0:
			res.Outcome = RotateRevoked
			return nil
		case outcome == RotateReused:
			return x.revokeReused(ctx, tx, &res, now)
		case tokExpires <= now:
			res.Outcome = RotateExpired
			return nil
		case disabled:
			res.Outcome = RotateUserDisabled
			return nil
		}
		if outcome == Rotated {
			if outcome, err = spend(ctx, tx, "refresh_tokens", oldHash, now, grace); err != nil {
				return err
			} else if outcome == RotateReused {
				return x.revokeReused(ctx, tx, &res, now)
			}
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES ($1, $2, $3, $4)`,
			next.Hash, sess.ID, timeToMs(next.CreatedAt), timeToMs(next.ExpiresAt)); err != nil {
			return dbErr(ctx, "rotate refresh token", err)
		}
		if _, err := tx.ExecContext(ctx,
			`UPDATE auth_sessions SET expires_at = $1 WHERE session_id = $2`, timeToMs(next.ExpiresAt), sess.ID); err != nil {
			return dbErr(ctx, "rotate refresh token", err)
		}
		res.Session.ExpiresAt = msToTime(timeToMs(next.ExpiresAt))
		res.Outcome = outcome
		return nil
	})
	return res, err
}

func (x *Tokens) revokeReused(ctx context.Context, tx *sql.Tx, res *RotateResult, now int64) error {
	if _, err := tx.ExecContext(ctx,
		`UPDATE auth_sessions SET revoked_at = $1, revoke_reason = $2 WHERE session_id = $3 AND revoked_at = 0`,
		now, RevokeReuse, res.Session.ID); err != nil {
		return dbErr(ctx, "revoke session", err)
	}
	res.Outcome = RotateReused
	res.Session.RevokedAt, res.Session.RevokeReason = msToTime(now), RevokeReuse
	return nil
}

// RevokeByRefreshToken revokes the session the refresh token belongs to
// (logout) and returns it. Revoking a revoked session is a no-op that keeps
// the first reason. ErrNotFound if the token is unknown.
func (x *Tokens) RevokeByRefreshToken(ctx context.Context, hash, reason string) (Session, error) {
	var sess Session
	err := x.s.inTx(ctx, "revoke session", func(tx *sql.Tx) error {
		var id string
		err := tx.QueryRowContext(ctx, `SELECT session_id FROM refresh_tokens WHERE token_hash = $1`, hash).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("refresh token")
		}
		if err != nil {
			return dbErr(ctx, "revoke session", err)
		}
		if _, err := tx.ExecContext(ctx,
			`UPDATE auth_sessions SET revoked_at = $1, revoke_reason = $2 WHERE session_id = $3 AND revoked_at = 0`,
			x.s.nowMs(), reason, id); err != nil {
			return dbErr(ctx, "revoke session", err)
		}
		sess, err = getSession(ctx, tx, id)
		return err
	})
	return sess, err
}

// SessionState is what authenticating an access token needs to know about
// its session and user, read in one query.
type SessionState struct {
	Session      Session
	UserDisabled bool
}

// SessionState returns the session and whether its user is disabled;
// ErrNotFound if the session does not exist (or was pruned).
func (x *Tokens) SessionState(ctx context.Context, sessionID string) (SessionState, error) {
	var (
		st                        SessionState
		created, expires, revoked int64
	)
	err := x.s.db.QueryRowContext(ctx,
		`SELECT s.session_id, s.username, s.created_at, s.expires_at, s.revoked_at, s.revoke_reason, u.disabled
		 FROM auth_sessions s JOIN users u ON u.username = s.username
		 WHERE s.session_id = $1`, sessionID).
		Scan(&st.Session.ID, &st.Session.Username, &created, &expires, &revoked, &st.Session.RevokeReason, &st.UserDisabled)
	if errors.Is(err, sql.ErrNoRows) {
		return SessionState{}, notFound("session %q", sessionID)
	}
	if err != nil {
		return SessionState{}, dbErr(ctx, "get session", err)
	}
	st.Session.CreatedAt, st.Session.ExpiresAt, st.Session.RevokedAt = msToTime(created), msToTime(expires), msToTime(revoked)
	return st, nil
}

// Prune deletes sessions (and, by cascade, their refresh tokens) that
// expired or were revoked before the cutoff. Revoked sessions are kept until
// then so that a replayed token is still recognised as revoked, not unknown.
func (x *Tokens) Prune(ctx context.Context, before time.Time) (int64, error) {
	cut := timeToMs(before)
	res, err := x.s.db.ExecContext(ctx,
		`DELETE FROM auth_sessions WHERE expires_at < $1 OR (revoked_at <> 0 AND revoked_at < $1)`, cut)
	if err != nil {
		return 0, dbErr(ctx, "prune sessions", err)
	}
	n, err := res.RowsAffected()
	return n, dbErr(ctx, "prune sessions", err)
}

// EnsureSigningKey returns the signing key named kid, storing secret under
// that name first if there is none. Every server node calls it at start with
// its own random secret; the first insert wins and all nodes use that one.
func (x *Tokens) EnsureSigningKey(ctx context.Context, kid string, secret []byte) ([]byte, error) {
	if kid == "" || len(secret) == 0 {
		return nil, invalid("a signing key needs a key id and a secret")
	}
	if _, err := x.s.db.ExecContext(ctx,
		`INSERT INTO auth_signing_keys (kid, secret, created_at) VALUES ($1, $2, $3) ON CONFLICT (kid) DO NOTHING`,
		kid, secret, x.s.nowMs()); err != nil {
		return nil, dbErr(ctx, "store signing key", err)
	}
	var stored []byte
	if err := x.s.db.QueryRowContext(ctx, `SELECT secret FROM auth_signing_keys WHERE kid = $1`, kid).Scan(&stored); err != nil {
		return nil, dbErr(ctx, "read signing key", err)
	}
	return stored, nil
}

func getSession(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, id string) (Session, error) {
	var (
		sess                      Session
		created, expires, revoked int64
	)
	err := q.QueryRowContext(ctx,
		`SELECT session_id, username, created_at, expires_at, revoked_at, revoke_reason FROM auth_sessions WHERE session_id = $1`, id).
		Scan(&sess.ID, &sess.Username, &created, &expires, &revoked, &sess.RevokeReason)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, notFound("session %q", id)
	}
	if err != nil {
		return Session{}, dbErr(ctx, "get session", err)
	}
	sess.CreatedAt, sess.ExpiresAt, sess.RevokedAt = msToTime(created), msToTime(expires), msToTime(revoked)
	return sess, nil
}

// revokeUserSessions revokes every live session of the user inside tx.
func revokeUserSessions(ctx context.Context, tx *sql.Tx, username, reason string, now int64) error {
	_, err := tx.ExecContext(ctx,
		`UPDATE auth_sessions SET revoked_at = $1, revoke_reason = $2 WHERE username = $3 AND revoked_at = 0`,
		now, reason, username)
	return dbErr(ctx, "revoke sessions", err)
}
