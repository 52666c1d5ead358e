package store

import (
	"context"
	"database/sql"
	"errors"

	"google.golang.org/protobuf/proto"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
)

// Fleets stores fleet definitions. A fleet is kept whole as protobuf binary
// (like function descriptors), with the columns queries need beside it.
type Fleets struct{ s *Store }

// Fleets returns the store of fleet definitions.
func (s *Store) Fleets() *Fleets { return &Fleets{s: s} }

// Create inserts f with version 1 and the store clock's creation time, both
// written back into f. The scope must be declared (ErrNotFound); an existing
// id is ErrConflict.
func (x *Fleets) Create(ctx context.Context, f *croupierv1.Fleet) error {
	if f == nil || f.GetFleetId() == "" {
		return invalid("fleet needs an id")
	}
	if err := checkScope(f.GetGameId(), f.GetEnv()); err != nil {
		return err
	}
	now := x.s.nowMs()
	f.Version, f.CreationTimeMs, f.UpdateTimeMs = 1, now, now
	blob, err := marshalFleet(f)
	if err != nil {
		return err
	}
	_, err = x.s.db.ExecContext(ctx,
		`INSERT INTO fleets (fleet_id, game_id, env, spec, version, created_at, updated_at)
		 VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		f.GetFleetId(), f.GetGameId(), f.GetEnv(), blob, f.GetVersion(), now, now)
	if err != nil {
		err = dbErr(ctx, "create fleet", err)
		switch {
		case errors.Is(err, ErrConflict):
			return conflict("fleet %q already exists", f.GetFleetId())
		case errors.Is(err, ErrNotFound):
			return notFound("scope %s/%s", f.GetGameId(), f.GetEnv())
		}
		return err
	}
	return nil
}

// Get returns one fleet, or ErrNotFound.
func (x *Fleets) Get(ctx context.Context, id string) (*croupierv1.Fleet, error) {
	var blob []byte
	err := x.s.db.QueryRowContext(ctx, `SELECT spec FROM fleets WHERE fleet_id = $1`, id).Scan(&blob)
	if err != nil {
		err = dbErr(ctx, "get fleet", err)
		if errors.Is(err, ErrNotFound) {
			return nil, notFound("fleet %q", id)
		}
		return nil, err
	}
	return unmarshalFleet(blob)
}

// List returns the fleets of a scope ordered by id; empty game and env list
// every fleet.
func (x *Fleets) List(ctx context.Context, game, env string) ([]*croupierv1.Fleet, error) {
	q, args := `SELECT spec FROM fleets ORDER BY fleet_id`, []any(nil)
	if game != "" || env != "" {
		if err := checkScope(game, env); err != nil {
			return nil, err
		}
		q, args = `SELECT spec FROM fleets WHERE game_id = $1 AND env = $2 ORDER BY fleet_id`, []any{game, env}
	}
	rows, err := x.s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, dbErr(ctx, "list fleets", err)
	}
	defer rows.Close()
	var out []*croupierv1.Fleet
	for rows.Next() {
		var blob []byte
		if err := rows.Scan(&blob); err != nil {
			return nil, dbErr(ctx, "list fleets", err)
		}
		f, err := unmarshalFleet(blob)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr(ctx, "list fleets", err)
	}
	return out, nil
}

// Update replaces the stored definition of f.FleetId with f, keeping its id,
// scope and creation time. With a non-zero f.Version it is a compare-and-set
// (ErrConflict when the stored version differs). The new version and update
// time are written back into f.
func (x *Fleets) Update(ctx context.Context, f *croupierv1.Fleet) error {
	if f == nil || f.GetFleetId() == "" {
		return invalid("fleet needs an id")
	}
	return x.s.inTx(ctx, "update fleet", func(tx *sql.Tx) error {
		var blob []byte
		var version int64
		err := tx.QueryRowContext(ctx, `SELECT spec, version FROM fleets WHERE fleet_id = $1`, f.GetFleetId()).Scan(&blob, &version)
		if err != nil {
			err = dbErr(ctx, "update fleet", err)
			if errors.Is(err, ErrNotFound) {
				return notFound("fleet %q", f.GetFleetId())
			}
			return err
		}
		if f.GetVersion() != 0 && f.GetVersion() != version {
			return conflict("fleet %q is at version %d, not %d; read it again and retry", f.GetFleetId(), version, f.GetVersion())
		}
		old, err := unmarshalFleet(blob)
		if err != nil {
			return err
		}
		now := x.s.nowMs()
		f.GameId, f.Env, f.CreationTimeMs = old.GetGameId(), old.GetEnv(), old.GetCreationTimeMs()
		f.Version, f.UpdateTimeMs = version+1, now
		nb, err := marshalFleet(f)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx,
			`UPDATE fleets SET spec = $1, version = $2, updated_at = $3 WHERE fleet_id = $4 AND version = $5`,
			nb, f.GetVersion(), now, f.GetFleetId(), version)
		if err != nil {
			return dbErr(ctx, "update fleet", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return conflict("fleet %q changed concurrently; retry", f.GetFleetId())
		}
		return nil
	})
}

// Delete removes a fleet and, by cascade, its sessions, player sessions and
// placements. ErrNotFound if it does not exist.
func (x *Fleets) Delete(ctx context.Context, id string) error {
	res, err := x.s.db.ExecContext(ctx, `DELETE FROM fleets WHERE fleet_id = $1`, id)
	if err != nil {
		return dbErr(ctx, "delete fleet", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound("fleet %q", id)
	}
	return nil
}

func marshalFleet(f *croupierv1.Fleet) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(f)
	if err != nil {
		return nil, invalid("fleet %q does not encode: %v", f.GetFleetId(), err)
	}
	return b, nil
}

func unmarshalFleet(b []byte) (*croupierv1.Fleet, error) {
	f := &croupierv1.Fleet{}
	if err := proto.Unmarshal(b, f); err != nil {
		return nil, &Error{Op: "decode fleet", cause: err}
	}
	return f, nil
}
