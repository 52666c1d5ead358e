package store

import (
	"context"
	"time"
)

// Scope is a declared game/env pair. Every function, assignment and job
// belongs to one; undeclared scopes are refused by the services.
type Scope struct {
	GameID    string
	Env       string
	CreatedAt time.Time
	// AssignmentsVersion is bumped by every assignment change in the scope.
	AssignmentsVersion int64
}

// Scopes stores declared game/env pairs.
type Scopes struct{ s *Store }

// Declare records the scope; declaring an existing scope is a no-op.
func (x *Scopes) Declare(ctx context.Context, game, env string) error {
	if err := checkScope(game, env); err != nil {
		return err
	}
	_, err := x.s.db.ExecContext(ctx,
		`INSERT INTO scopes (game_id, env, assignments_version, created_at) VALUES ($1, $2, 0, $3)
		 ON CONFLICT (game_id, env) DO NOTHING`,
		game, env, x.s.nowMs())
	return dbErr(ctx, "declare scope", err)
}

// Exists reports whether the scope was declared.
func (x *Scopes) Exists(ctx context.Context, game, env string) (bool, error) {
	var n int
	err := x.s.db.QueryRowContext(ctx,
		`SELECT COUNT(*) FROM scopes WHERE game_id = $1 AND env = $2`, game, env).Scan(&n)
	if err != nil {
		return false, dbErr(ctx, "look up scope", err)
	}
	return n > 0, nil
}

// List returns every declared scope ordered by game, then env.
func (x *Scopes) List(ctx context.Context) ([]Scope, error) {
	rows, err := x.s.db.QueryContext(ctx,
		`SELECT game_id, env, created_at, assignments_version FROM scopes ORDER BY game_id, env`)
	if err != nil {
		return nil, dbErr(ctx, "list scopes", err)
	}
	defer rows.Close()
	var out []Scope
	for rows.Next() {
		var sc Scope
		var created int64
		if err := rows.Scan(&sc.GameID, &sc.Env, &created, &sc.AssignmentsVersion); err != nil {
			return nil, dbErr(ctx, "list scopes", err)
		}
		sc.CreatedAt = msToTime(created)
		out = append(out, sc)
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr(ctx, "list scopes", err)
	}
	return out, nil
}

// checkScope refuses empty scope components, which would otherwise make
// distinct scopes indistinguishable in logs and APIs.
func checkScope(game, env string) error {
	if game == "" || env == "" {
		return invalid("game id and env must not be empty (got game %q, env %q)", game, env)
	}
	return nil
}
