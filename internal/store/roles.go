package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"
)

// Role is a custom role: a named set of permissions. Built-in roles are
// defined in code (internal/rbac) and never stored.
type Role struct {
	Name        string
	Permissions []string
	Description string
	CreatedAt   time.Time
}

// RoleBinding grants a role to a user on a scope pattern (canonical form,
// see internal/rbac).
type RoleBinding struct {
	Username  string
	Role      string
	Scope     string
	CreatedAt time.Time
}

// Roles stores custom roles and role bindings.
type Roles struct{ s *Store }

// Roles returns the store of custom roles and role bindings.
func (s *Store) Roles() *Roles { return &Roles{s: s} }

// Create stores a custom role; ErrConflict if the name is taken.
func (x *Roles) Create(ctx context.Context, r Role) error {
	if r.Name == "" {
		return invalid("a role needs a name")
	}
	perms, err := json.Marshal(nonNil(r.Permissions))
	if err != nil {
		return invalid("role permissions: %v", err)
	}
	_, err = x.s.db.ExecContext(ctx,
		`INSERT INTO roles (name, permissions, description, created_at) VALUES ($1, $2, $3, $4)`,
		r.Name, string(perms), r.Description, x.s.nowMs())
	if err != nil {
		err = dbErr(ctx, "create role", err)
		if errors.Is(err, ErrConflict) {
			return conflict("role %q already exists", r.Name)
		}
		return err
	}
	return nil
}

// Get returns a custom role; ErrNotFound if there is none.
func (x *Roles) Get(ctx context.Context, name string) (Role, error) {
	rows, err := x.s.db.QueryContext(ctx,
		`SELECT name, permissions, description, created_at FROM roles WHERE name = $1`, name)
	if err != nil {
		return Role{}, dbErr(ctx, "get role", err)
	}
	roles, err := scanRoles(ctx, rows)
	if err != nil {
		return Role{}, err
	}
	if len(roles) == 0 {
		return Role{}, notFound("role %q", name)
	}
	return roles[0], nil
}

// List returns every custom role ordered by name.
func (x *Roles) List(ctx context.Context) ([]Role, error) {
	rows, err := x.s.db.QueryContext(ctx,
		`SELECT name, permissions, description, created_at FROM roles ORDER BY name`)
	if err != nil {
		return nil, dbErr(ctx, "list roles", err)
	}
	return scanRoles(ctx, rows)
}

func scanRoles(ctx context.Context, rows *sql.Rows) ([]Role, error) {
	defer rows.Close()
	var out []Role
	for rows.Next() {
		var (
			r       Role
			perms   string
			created int64
		)
		if err := rows.Scan(&r.Name, &perms, &r.Description, &created); err != nil {
			return nil, dbErr(ctx, "read roles", err)
		}
		if err := json.Unmarshal([]byte(perms), &r.Permissions); err != nil {
			return nil, &Error{Op: "read roles", cause: err}
		}
		r.CreatedAt = msToTime(created)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr(ctx, "read roles", err)
	}
	return out, nil
}

// Delete removes a custom role. It refuses (ErrConflict) while the role is
// still granted to anyone: silently dropping grants would change what
// people may do without a record of who lost what. ErrNotFound if there is
// no such role.
func (x *Roles) Delete(ctx context.Context, name string) error {
	return x.s.inTx(ctx, "delete role", func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM role_bindings WHERE role = $1`, name).Scan(&n); err != nil {
			return dbErr(ctx, "delete role", err)
		}
		if n > 0 {
			return conflict("role %q is granted %d time(s); revoke those grants first", name, n)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM roles WHERE name = $1`, name)
		return affectedOne(ctx, "delete role", res, err, "role %q", name)
	})
}

// Grant binds role to the user on scope. Granting an existing binding is a
// no-op. ErrNotFound if the user does not exist. The caller checks that the
// role exists and the scope is well-formed.
func (x *Roles) Grant(ctx context.Context, b RoleBinding) error {
	if b.Username == "" || b.Role == "" || b.Scope == "" {
		return invalid("a role binding needs a username, a role and a scope")
	}
	_, err := x.s.db.ExecContext(ctx,
		`INSERT INTO role_bindings (username, role, scope, created_at) VALUES ($1, $2, $3, $4)
		 ON CONFLICT (username, role, scope) DO NOTHING`,
		b.Username, b.Role, b.Scope, x.s.nowMs())
	if err != nil {
		err = dbErr(ctx, "grant role", err)
		if errors.Is(err, ErrNotFound) {
			return notFound("user %q", b.Username)
		}
		return err
	}
	return nil
}

// Revoke removes the binding; ErrNotFound if it does not exist.
func (x *Roles) Revoke(ctx context.Context, username, role, scope string) error {
	res, err := x.s.db.ExecContext(ctx,
		`DELETE FROM role_bindings WHERE username = $1 AND role = $2 AND scope = $3`, username, role, scope)
	return affectedOne(ctx, "revoke role", res, err, "role %q on %q for user %q", role, scope, username)
}

// Bindings returns the user's bindings ordered by role, then scope.
func (x *Roles) Bindings(ctx context.Context, username string) ([]RoleBinding, error) {
	rows, err := x.s.db.QueryContext(ctx,
		`SELECT username, role, scope, created_at FROM role_bindings WHERE username = $1 ORDER BY role, scope`, username)
	if err != nil {
		return nil, dbErr(ctx, "list role bindings", err)
	}
	return scanBindings(ctx, rows)
}

// AllBindings returns every binding ordered by username, role, scope.
func (x *Roles) AllBindings(ctx context.Context) ([]RoleBinding, error) {
	rows, err := x.s.db.QueryContext(ctx,
		`SELECT username, role, scope, created_at FROM role_bindings ORDER BY username, role, scope`)
	if err != nil {
		return nil, dbErr(ctx, "list role bindings", err)
	}
	return scanBindings(ctx, rows)
}

func scanBindings(ctx context.Context, rows *sql.Rows) ([]RoleBinding, error) {
	defer rows.Close()
	var out []RoleBinding
	for rows.Next() {
		var (
			b       RoleBinding
			created int64
		)
		if err := rows.Scan(&b.Username, &b.Role, &b.Scope, &created); err != nil {
			return nil, dbErr(ctx, "list role bindings", err)
		}
		b.CreatedAt = msToTime(created)
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr(ctx, "list role bindings", err)
	}
	return out, nil
}

// nonNil makes a nil slice encode as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
