-- Operator access, PostgreSQL dialect: users, login sessions and refresh
-- tokens, the token signing key, custom roles and role bindings, approval
-- requests, and the hash-chained audit log. Keep in step with
-- ../sqlite/00002_access.sql (same tables, columns and indexes). Timestamps are
-- unix milliseconds; 0 means "not set". See docs/access.md.

-- +goose Up
CREATE TABLE users (
    username      TEXT    NOT NULL PRIMARY KEY,
    -- argon2id in PHC string format: $argon2id$v=19$m=..,t=..,p=..$salt$hash
    password_hash TEXT    NOT NULL,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL
);

-- One row per login: the refresh-token family. Revoking it (logout, reuse of
-- a rotated refresh token, password change, disable) invalidates every
-- refresh token of the family and every access token that names it (sid).
CREATE TABLE auth_sessions (
    session_id    TEXT    NOT NULL PRIMARY KEY,
    username      TEXT    NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    created_at    BIGINT  NOT NULL,
    -- Expiry of the newest refresh token of the family.
    expires_at    BIGINT  NOT NULL,
    revoked_at    BIGINT  NOT NULL DEFAULT 0,
    revoke_reason TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX auth_sessions_username ON auth_sessions (username);
CREATE INDEX auth_sessions_expires_at ON auth_sessions (expires_at);

-- Refresh tokens are stored as the hex SHA-256 of the token, never in clear.
CREATE TABLE refresh_tokens (
    token_hash TEXT    NOT NULL PRIMARY KEY,
    session_id TEXT    NOT NULL REFERENCES auth_sessions (session_id) ON DELETE CASCADE,
    created_at BIGINT  NOT NULL,
    expires_at BIGINT  NOT NULL,
    -- Set when the token is exchanged; presenting it again is reuse.
    used_at    BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- HMAC keys for access tokens (JWT HS256), generated at first start.
CREATE TABLE auth_signing_keys (
    kid        TEXT    NOT NULL PRIMARY KEY,
    secret     BYTEA   NOT NULL,
    created_at BIGINT  NOT NULL
);

-- Custom roles; the built-in ones (admin, operator, viewer, ...) live in code.
CREATE TABLE roles (
    name        TEXT    NOT NULL PRIMARY KEY,
    -- JSON array of permission strings.
    permissions TEXT    NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    created_at  BIGINT  NOT NULL
);

CREATE TABLE role_bindings (
    username   TEXT    NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    role       TEXT    NOT NULL,
    -- Canonical scope pattern: game:<g>/env:<e>/function:<f>, '*' wildcards.
    scope      TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    PRIMARY KEY (username, role, scope)
);
CREATE INDEX role_bindings_role ON role_bindings (role);

CREATE TABLE approvals (
    approval_id      TEXT    NOT NULL PRIMARY KEY,
    requester        TEXT    NOT NULL,
    game_id          TEXT    NOT NULL,
    env              TEXT    NOT NULL,
    function_id      TEXT    NOT NULL,
    -- JSON document: the payload the call will run with, unmasked.
    payload          BYTEA   NOT NULL,
    -- croupier.v1.InvokeOptions as JSON.
    options          BYTEA   NOT NULL,
    -- JSON array of JSON pointers masked when the request is shown.
    sensitive_fields TEXT    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'expired', 'executed', 'failed')),
    created_at       BIGINT  NOT NULL,
    expires_at       BIGINT  NOT NULL,
    decided_by       TEXT    NOT NULL DEFAULT '',
    decided_at       BIGINT  NOT NULL DEFAULT 0,
    reason           TEXT    NOT NULL DEFAULT '',
    job_id           TEXT    NOT NULL DEFAULT '',
    error_message    TEXT    NOT NULL DEFAULT '',
    updated_at       BIGINT  NOT NULL
);
CREATE INDEX approvals_created ON approvals (created_at, approval_id);
CREATE INDEX approvals_status_expires ON approvals (status, expires_at);

-- The audit log is append-only and hash-chained: hash = SHA-256 over the
-- row's canonical encoding including prev_hash (the previous row's hash).
-- ids are assigned by the appender as head + 1, never by a sequence, so a
-- missing id is a removed row, not a rolled-back insert.
CREATE TABLE audit_log (
    id          BIGINT  NOT NULL PRIMARY KEY,
    ts_ms       BIGINT  NOT NULL,
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    game_id     TEXT    NOT NULL,
    env         TEXT    NOT NULL,
    function_id TEXT    NOT NULL,
    -- JSON with the descriptor's sensitive fields masked.
    payload     TEXT    NOT NULL,
    result      TEXT    NOT NULL,
    duration_ms BIGINT  NOT NULL,
    request_id  TEXT    NOT NULL,
    prev_hash   TEXT    NOT NULL,
    hash        TEXT    NOT NULL
);
CREATE INDEX audit_log_scope ON audit_log (game_id, env, id);
CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX audit_log_function ON audit_log (function_id, id);
CREATE INDEX audit_log_ts ON audit_log (ts_ms, id);

-- The chain's head: the last id and hash. Appenders lock this one row
-- (UPDATE ... RETURNING) for the length of their transaction, which
-- serialises appends across server nodes, and Verify compares the last row
-- with it to detect a truncated tail.
CREATE TABLE audit_head (
    k         INTEGER NOT NULL PRIMARY KEY CHECK (k = 1),
    last_id   BIGINT  NOT NULL,
    last_hash TEXT    NOT NULL
);
INSERT INTO audit_head (k, last_id, last_hash) VALUES (1, 0, '');

-- +goose Down
DROP TABLE audit_head;
DROP TABLE audit_log;
DROP TABLE approvals;
DROP TABLE role_bindings;
DROP TABLE roles;
DROP TABLE auth_signing_keys;
DROP TABLE refresh_tokens;
DROP TABLE auth_sessions;
DROP TABLE users;
