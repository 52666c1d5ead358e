-- Live stream keys (docs/live.md), postgres dialect: one secret publishing key
-- per (room, stream name), kept as hex SHA-256. Keep in step with the other
-- dialect's 00008_stream_keys.sql. Timestamps are unix milliseconds.

-- +goose Up
CREATE TABLE room_stream_keys (
    room_id    TEXT    NOT NULL REFERENCES rooms (room_id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    key_hash   TEXT    NOT NULL,
    created_by TEXT    NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (room_id, name)
);
CREATE UNIQUE INDEX room_stream_keys_hash ON room_stream_keys (key_hash);

-- +goose Down
DROP TABLE room_stream_keys;
