-- Rooms (SyncTV's ClientService, docs/rooms.md), SQLite dialect: player
-- accounts and their login sessions (separate from operators), rooms with
-- their playback state, members, playlists and the retained chat history.
-- Keep in step with ../postgres/00007_rooms.sql. Timestamps are unix
-- milliseconds; ids are nanoid(12).

-- +goose Up
CREATE TABLE room_users (
    user_id       TEXT    NOT NULL PRIMARY KEY,
    username      TEXT    NOT NULL,
    -- lower(username) for registered users, unique; NULL for guests, whose
    -- display names may repeat.
    username_key  TEXT,
    email         TEXT    NOT NULL DEFAULT '',
    -- argon2id (PHC string); empty for guests.
    password_hash TEXT    NOT NULL DEFAULT '',
    guest         BOOLEAN NOT NULL DEFAULT FALSE,
    -- The one room a guest may use.
    guest_room_id TEXT    NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE UNIQUE INDEX room_users_username_key ON room_users (username_key);

-- A player login: the refresh-token family (guests have a session and no
-- refresh token). Access tokens name their session (sid).
CREATE TABLE room_user_sessions (
    session_id TEXT    NOT NULL PRIMARY KEY,
    user_id    TEXT    NOT NULL REFERENCES room_users (user_id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX room_user_sessions_user ON room_user_sessions (user_id);

-- Refresh tokens as hex SHA-256, never in clear.
CREATE TABLE room_refresh_tokens (
    token_hash TEXT    NOT NULL PRIMARY KEY,
    session_id TEXT    NOT NULL REFERENCES room_user_sessions (session_id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX room_refresh_tokens_session ON room_refresh_tokens (session_id);

CREATE TABLE rooms (
    room_id             TEXT    NOT NULL PRIMARY KEY,
    name                TEXT    NOT NULL,
    -- lower(name), for search.
    name_key            TEXT    NOT NULL,
    creator_id          TEXT    NOT NULL REFERENCES room_users (user_id) ON DELETE CASCADE,
    password_hash       TEXT    NOT NULL DEFAULT '',
    hidden              BOOLEAN NOT NULL DEFAULT FALSE,
    join_needs_approval BOOLEAN NOT NULL DEFAULT FALSE,
    allow_guests        BOOLEAN NOT NULL DEFAULT FALSE,
    default_permissions BIGINT  NOT NULL,
    created_at          INTEGER NOT NULL,
    -- The playback state (server-authoritative, compare-on-version).
    movie_id            TEXT    NOT NULL DEFAULT '',
    playing             BOOLEAN NOT NULL DEFAULT FALSE,
    position            REAL    NOT NULL DEFAULT 0,
    rate                REAL    NOT NULL DEFAULT 1,
    state_updated_at    INTEGER NOT NULL DEFAULT 0,
    state_version       BIGINT  NOT NULL DEFAULT 0,
    state_updated_by    TEXT    NOT NULL DEFAULT '',
    -- Room event sequence numbers are handed out in blocks; this is the
    -- end of the last block reserved, so a restarted node continues above
    -- every seq a client may have seen.
    seq_reserved        BIGINT  NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX rooms_listed ON rooms (hidden, created_at, room_id);

CREATE TABLE room_members (
    room_id     TEXT    NOT NULL REFERENCES rooms (room_id) ON DELETE CASCADE,
    user_id     TEXT    NOT NULL REFERENCES room_users (user_id) ON DELETE CASCADE,
    -- synctv.client.MemberRole and MemberStatus numbers.
    role        INTEGER NOT NULL,
    status      INTEGER NOT NULL,
    -- Bitmask of synctv.client.Permission.
    permissions BIGINT  NOT NULL,
    joined_at   INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id)
) WITHOUT ROWID;
CREATE INDEX room_members_user ON room_members (user_id);

CREATE TABLE room_movies (
    movie_id   TEXT    NOT NULL PRIMARY KEY,
    room_id    TEXT    NOT NULL REFERENCES rooms (room_id) ON DELETE CASCADE,
    url        TEXT    NOT NULL,
    title      TEXT    NOT NULL,
    type       INTEGER NOT NULL,
    -- 0-based index, dense: renumbered on remove and reorder.
    position   INTEGER NOT NULL,
    added_by   TEXT    NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX room_movies_room ON room_movies (room_id, position);

-- The newest chat messages of each room (the service keeps 500).
CREATE TABLE room_chat (
    room_id    TEXT    NOT NULL REFERENCES rooms (room_id) ON DELETE CASCADE,
    seq        BIGINT  NOT NULL,
    message_id TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    username   TEXT    NOT NULL,
    guest      BOOLEAN NOT NULL,
    content    TEXT    NOT NULL,
    sent_at    INTEGER NOT NULL,
    PRIMARY KEY (room_id, seq)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE room_chat;
DROP TABLE room_movies;
DROP TABLE room_members;
DROP TABLE rooms;
DROP TABLE room_refresh_tokens;
DROP TABLE room_user_sessions;
DROP TABLE room_users;
