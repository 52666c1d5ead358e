package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// StreamKey is a live stream's publishing key (docs/live.md), by hash.
type StreamKey struct {
	RoomID, Name string
	// KeyHash is the hex SHA-256 of the secret key.
	KeyHash   string
	CreatedBy string
	CreatedAt time.Time
}

// PutStreamKey stores k. With replace false it fails with ErrConflict if
// the stream has a key; with replace true it fails with ErrNotFound if it
// has none.
func (x *Rooms) PutStreamKey(ctx context.Context, k StreamKey, replace bool) error {
	if replace {
		res, err := x.s.db.ExecContext(ctx, `UPDATE room_stream_keys SET key_hash = $1, created_by = $2, created_at = $3
			WHERE room_id = $4 AND name = $5`, k.KeyHash, k.CreatedBy, k.CreatedAt.UnixMilli(), k.RoomID, k.Name)
		return affectedOne(ctx, "rotate stream key", res, err, "stream key %q of room %q", k.Name, k.RoomID)
	}
	_, err := x.s.db.ExecContext(ctx, `INSERT INTO room_stream_keys (room_id, name, key_hash, created_by, created_at)
		VALUES ($1, $2, $3, $4, $5)`, k.RoomID, k.Name, k.KeyHash, k.CreatedBy, k.CreatedAt.UnixMilli())
	return dbErr(ctx, "create stream key", err)
}

// StreamKeyByHash finds a key by its hash; ErrNotFound if none.
func (x *Rooms) StreamKeyByHash(ctx context.Context, hash string) (StreamKey, error) {
	var k StreamKey
	var at int64
	err := x.s.db.QueryRowContext(ctx, `SELECT room_id, name, key_hash, created_by, created_at
		FROM room_stream_keys WHERE key_hash = $1`, hash).Scan(&k.RoomID, &k.Name, &k.KeyHash, &k.CreatedBy, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return StreamKey{}, notFound("stream key")
	}
	k.CreatedAt = msToTime(at)
	return k, dbErr(ctx, "get stream key", err)
}

// DeleteStreamKey removes a stream's key; ErrNotFound if none.
func (x *Rooms) DeleteStreamKey(ctx context.Context, roomID, name string) error {
	res, err := x.s.db.ExecContext(ctx, `DELETE FROM room_stream_keys WHERE room_id = $1 AND name = $2`, roomID, name)
	return affectedOne(ctx, "revoke stream key", res, err, "stream key %q of room %q", name, roomID)
}
