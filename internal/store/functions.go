package store

import (
	"context"
	"errors"

	"google.golang.org/protobuf/proto"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
)

// Functions stores the descriptors game servers registered, per scope. A
// descriptor is stored as protobuf binary so fields added to the message
// later survive a round trip through an older schema.
type Functions struct{ s *Store }

// Put creates or replaces the descriptor desc.Id in the scope. The scope must
// be declared (ErrNotFound otherwise).
func (x *Functions) Put(ctx context.Context, game, env string, desc *croupierv1.FunctionDescriptor) error {
	if err := checkScope(game, env); err != nil {
		return err
	}
	if desc == nil || desc.GetId() == "" {
		return invalid("function descriptor needs an id")
	}
	blob, err := proto.MarshalOptions{Deterministic: true}.Marshal(desc)
	if err != nil {
		return invalid("function %q: descriptor does not encode: %v", desc.GetId(), err)
	}
	_, err = x.s.db.ExecContext(ctx,
		`INSERT INTO functions (game_id, env, function_id, descriptor, updated_at) VALUES ($1, $2, $3, $4, $5)
		 ON CONFLICT (game_id, env, function_id) DO UPDATE SET descriptor = excluded.descriptor, updated_at = excluded.updated_at`,
		game, env, desc.GetId(), blob, x.s.nowMs())
	if err != nil {
		err = dbErr(ctx, "put function", err)
		if errors.Is(err, ErrNotFound) { // foreign key: the scope is missing
			return notFound("scope %s/%s", game, env)
		}
		return err
	}
	return nil
}

// Get returns one descriptor, or ErrNotFound.
func (x *Functions) Get(ctx context.Context, game, env, id string) (*croupierv1.FunctionDescriptor, error) {
	var blob []byte
	err := x.s.db.QueryRowContext(ctx,
		`SELECT descriptor FROM functions WHERE game_id = $1 AND env = $2 AND function_id = $3`,
		game, env, id).Scan(&blob)
	if err != nil {
		err = dbErr(ctx, "get function", err)
		if errors.Is(err, ErrNotFound) {
			return nil, notFound("function %q in %s/%s", id, game, env)
		}
		return nil, err
	}
	return decodeDescriptor(id, blob)
}

// List returns the scope's descriptors ordered by id.
func (x *Functions) List(ctx context.Context, game, env string) ([]*croupierv1.FunctionDescriptor, error) {
	rows, err := x.s.db.QueryContext(ctx,
		`SELECT function_id, descriptor FROM functions WHERE game_id = $1 AND env = $2 ORDER BY function_id`,
		game, env)
	if err != nil {
		return nil, dbErr(ctx, "list functions", err)
	}
	defer rows.Close()
	var out []*croupierv1.FunctionDescriptor
	for rows.Next() {
		var id string
		var blob []byte
		if err := rows.Scan(&id, &blob); err != nil {
			return nil, dbErr(ctx, "list functions", err)
		}
		d, err := decodeDescriptor(id, blob)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr(ctx, "list functions", err)
	}
	return out, nil
}

// Delete removes one descriptor; ErrNotFound if there was none.
func (x *Functions) Delete(ctx context.Context, game, env, id string) error {
	res, err := x.s.db.ExecContext(ctx,
		`DELETE FROM functions WHERE game_id = $1 AND env = $2 AND function_id = $3`, game, env, id)
	if err != nil {
		return dbErr(ctx, "delete function", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return dbErr(ctx, "delete function", err)
	} else if n == 0 {
		return notFound("function %q in %s/%s", id, game, env)
	}
	return nil
}

func decodeDescriptor(id string, blob []byte) (*croupierv1.FunctionDescriptor, error) {
	d := &croupierv1.FunctionDescriptor{}
	if err := proto.Unmarshal(blob, d); err != nil {
		return nil, &Error{Op: "decode function " + id, cause: err}
	}
	return d, nil
}
