package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// User is an operator account. PasswordHash is an encoded argon2id hash
// (internal/auth builds and checks it); the store never sees a password.
type User struct {
	Username     string
	PasswordHash string
	Disabled     bool
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Users stores operator accounts.
type Users struct{ s *Store }

// Users returns the store of operator accounts.
func (s *Store) Users() *Users { return &Users{s: s} }

// Revoke reasons the store writes itself.
const (
	RevokePasswordChanged = "password changed"
	RevokeUserDisabled    = "user disabled"
)

// Create adds a user; ErrConflict if the username is taken, also in
// another case ("Admin" when "admin" exists): names that differ only in case
// would pass for one another in lists and audit rows. (Usernames are ASCII,
// so lower() is exact. The check names the existing user; the unique index
// on lower(username), migration 00010, refuses the loser of two racing
// creates.)
func (x *Users) Create(ctx context.Context, u User) error {
	if u.Username == "" || u.PasswordHash == "" {
		return invalid("a user needs a username and a password hash")
	}
	var taken string
	err := x.s.db.QueryRowContext(ctx, `SELECT username FROM users WHERE lower(username) = lower($1) LIMIT 1`, u.Username).Scan(&taken)
	switch {
	case err == nil:
		if taken == u.Username {
			return conflict("user %q already exists", u.Username)
		}
		return conflict("user %q already exists as %q: user names must differ in more than case", u.Username, taken)
	case !errors.Is(err, sql.ErrNoRows):
		return dbErr(ctx, "create user", err)
	}
	now := x.s.nowMs()
	_, err = x.s.db.ExecContext(ctx,
		`INSERT INTO users (username, password_hash, disabled, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)`,
		u.Username, u.PasswordHash, u.Disabled, now)
	if err != nil {
		err = dbErr(ctx, "create user", err)
		if errors.Is(err, ErrConflict) {
			return conflict("user %q already exists", u.Username)
		}
		return err
	}
	return nil
}

// Get returns the user; ErrNotFound if there is none.
func (x *Users) Get(ctx context.Context, username string) (User, error) {
	var (
		u                User
		created, updated int64
	)
	err := x.s.db.QueryRowContext(ctx,
		`SELECT username, password_hash, disabled, created_at, updated_at FROM users WHERE username = $1`, username).
		Scan(&u.Username, &u.PasswordHash, &u.Disabled, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, notFound("user %q", username)
	}
	if err != nil {
		return User{}, dbErr(ctx, "get user", err)
	}
	u.CreatedAt, u.UpdatedAt = msToTime(created), msToTime(updated)
	return u, nil
}

// List returns every user ordered by username. Password hashes are left
// empty: listing never needs them.
func (x *Users) List(ctx context.Context) ([]User, error) {
	rows, err := x.s.db.QueryContext(ctx,
		`SELECT username, disabled, created_at, updated_at FROM users ORDER BY username`)
	if err != nil {
		return nil, dbErr(ctx, "list users", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		var (
			u                User
			created, updated int64
		)
		if err := rows.Scan(&u.Username, &u.Disabled, &created, &updated); err != nil {
			return nil, dbErr(ctx, "list users", err)
		}
		u.CreatedAt, u.UpdatedAt = msToTime(created), msToTime(updated)
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr(ctx, "list users", err)
	}
	return out, nil
}

// SetPasswordHash replaces the user's password hash and, in the same
// transaction, revokes every login session of the user: whoever held the old
// password (or a token obtained with it) has to log in again.
func (x *Users) SetPasswordHash(ctx context.Context, username, hash string) error {
	if hash == "" {
		return invalid("password hash must not be empty")
	}
	return x.s.inTx(ctx, "set password", func(tx *sql.Tx) error {
		now := x.s.nowMs()
		res, err := tx.ExecContext(ctx,
			`UPDATE users SET password_hash = $1, updated_at = $2 WHERE username = $3`, hash, now, username)
		if err := affectedOne(ctx, "set password", res, err, "user %q", username); err != nil {
			return err
		}
		return revokeUserSessions(ctx, tx, username, RevokePasswordChanged, now)
	})
}

// SetDisabled disables or re-enables the user. Disabling also revokes every
// login session in the same transaction; re-enabling restores none of them.
func (x *Users) SetDisabled(ctx context.Context, username string, disabled bool) error {
	return x.s.inTx(ctx, "set user disabled", func(tx *sql.Tx) error {
		now := x.s.nowMs()
		res, err := tx.ExecContext(ctx,
			`UPDATE users SET disabled = $1, updated_at = $2 WHERE username = $3`, disabled, now, username)
		if err := affectedOne(ctx, "set user disabled", res, err, "user %q", username); err != nil {
			return err
		}
		if !disabled {
			return nil
		}
		return revokeUserSessions(ctx, tx, username, RevokeUserDisabled, now)
	})
}

// affectedOne turns an Exec result into ErrNotFound when no row matched.
func affectedOne(ctx context.Context, op string, res sql.Result, err error, what string, args ...any) error {
	if err != nil {
		return dbErr(ctx, op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return dbErr(ctx, op, err)
	}
	if n == 0 {
		return notFound(what, args...)
	}
	return nil
}
