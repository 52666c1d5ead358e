package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
)

// Assignments stores per-function enablement and config. Each scope carries
// one version number that every change bumps, so an agent holding version v
// knows it is current by comparing one integer.
type Assignments struct{ s *Store }

// Set writes the assignment of function fn in the scope and returns the
// scope's new assignments version. The bump and the write are one
// transaction: concurrent Sets on a scope get distinct, increasing versions,
// and a reader never sees a version without its change. Every call bumps,
// even when the values are unchanged. The scope must be declared.
func (x *Assignments) Set(ctx context.Context, game, env, fn string, enabled bool, config map[string]string) (int64, error) {
	if err := checkScope(game, env); err != nil {
		return 0, err
	}
	if fn == "" {
		return 0, invalid("assignment needs a function id")
	}
	if config == nil {
		config = map[string]string{}
	}
	cfgJSON, err := json.Marshal(config) // map keys are sorted: stable bytes
	if err != nil {
		return 0, invalid("assignment config: %v", err)
	}
	var version int64
	err = x.s.inTx(ctx, "set assignment", func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx,
			`UPDATE scopes SET assignments_version = assignments_version + 1
			 WHERE game_id = $1 AND env = $2 RETURNING assignments_version`, game, env).Scan(&version)
		if err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return notFound("scope %s/%s", game, env)
			}
			return dbErr(ctx, "set assignment", err)
		}
		_, err = tx.ExecContext(ctx,
			`INSERT INTO assignments (game_id, env, function_id, enabled, config, version, updated_at)
			 VALUES ($1, $2, $3, $4, $5, $6, $7)
			 ON CONFLICT (game_id, env, function_id) DO UPDATE SET
			   enabled = excluded.enabled, config = excluded.config,
			   version = excluded.version, updated_at = excluded.updated_at`,
			game, env, fn, enabled, string(cfgJSON), version, x.s.nowMs())
		return dbErr(ctx, "set assignment", err)
	})
	if err != nil {
		return 0, err
	}
	return version, nil
}

// List returns the scope's assignments ordered by function id, and the
// version they correspond to (read in one statement, so they agree).
func (x *Assignments) List(ctx context.Context, game, env string) ([]*croupierv1.FunctionAssignment, int64, error) {
	rows, err := x.s.db.QueryContext(ctx,
		`SELECT s.assignments_version, a.function_id, a.enabled, a.config
		 FROM scopes s LEFT JOIN assignments a ON a.game_id = s.game_id AND a.env = s.env
		 WHERE s.game_id = $1 AND s.env = $2
		 ORDER BY a.function_id`, game, env)
	if err != nil {
		return nil, 0, dbErr(ctx, "list assignments", err)
	}
	defer rows.Close()
	var (
		out     []*croupierv1.FunctionAssignment
		version int64
		found   bool
	)
	for rows.Next() {
		var (
			fn      sql.NullString
			enabled sql.NullBool
			cfg     sql.NullString
		)
		if err := rows.Scan(&version, &fn, &enabled, &cfg); err != nil {
			return nil, 0, dbErr(ctx, "list assignments", err)
		}
		found = true
		if !fn.Valid { // the scope has no assignments: one row from the LEFT JOIN
			continue
		}
		a := &croupierv1.FunctionAssignment{FunctionId: fn.String, Enabled: enabled.Bool, Config: map[string]string{}}
		if err := json.Unmarshal([]byte(cfg.String), &a.Config); err != nil {
			return nil, 0, &Error{Op: "decode assignment " + fn.String, cause: err}
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, dbErr(ctx, "list assignments", err)
	}
	if !found {
		return nil, 0, notFound("scope %s/%s", game, env)
	}
	return out, version, nil
}

// Version returns the scope's current assignments version (0 before the
// first Set).
func (x *Assignments) Version(ctx context.Context, game, env string) (int64, error) {
	var v int64
	err := x.s.db.QueryRowContext(ctx,
		`SELECT assignments_version FROM scopes WHERE game_id = $1 AND env = $2`, game, env).Scan(&v)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return 0, notFound("scope %s/%s", game, env)
		}
		return 0, dbErr(ctx, "read assignments version", err)
	}
	return v, nil
}
